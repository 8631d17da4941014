"""Training on respondent-packed examples (`packing`): TRL's SFTTrainer (its optimiser, schedule, logging,
checkpoints and resume, as the per-record path) fed one example per respondent, several respondents a step
(`training.per_device_batch_size` counts respondents here), for either objective: SFT (`packing.sft_loss`, the
output head at answer positions only) or option likelihood (`packing.option_loss`). `training.packing: respondent`.
With LoRA on the top layers only, the frozen layers below run once per respondent before training (`lower_cache`),
their states kept on disk beside the checkpoints until the run finishes.
"""
from __future__ import annotations

import time
from pathlib import Path

from trl import SFTTrainer

from ..dataset.prompts import closed_answer, prompt_completion
from .lower_cache import StatesCollator, lower_layers_passed, lower_states
from .packing import PackedCollator, answers_in, option_item, option_loss, pack_items, sft_item, sft_loss

__all__ = ["PackedTrainer", "answers_in", "packed_rows"]


def packed_rows(records: list[dict], tokenizer, objective: str, include_persona: bool, max_length: int
                ) -> list[dict]:
    """One packed row per persona of `records` (sorted by persona, each persona's records by id). SFT: every record
    on its reference; option likelihood: the closed records whose reference is one of their options."""
    by_persona: dict[str, list[dict]] = {}
    for record in sorted(records, key=lambda r: r["id"]):
        by_persona.setdefault(record["persona_id"], []).append(record)
    rows = []
    for persona in sorted(by_persona):
        if objective == "option_likelihood":
            items = [option_item(tokenizer, prompt_completion(r, include_persona)["prompt"], r["options"],
                                 closed_answer(r))
                     for r in by_persona[persona] if closed_answer(r) is not None]
        else:
            items = [sft_item(tokenizer, **prompt_completion(r, include_persona), max_length=max_length)
                     for r in by_persona[persona]]
        if items:
            rows.append(pack_items(items))
    return rows


class PackedTrainer(SFTTrainer):
    """SFTTrainer on packed rows (the module's docstring); `objective` chooses the loss. `lower_cached`: the number
    of frozen decoder layers below the adapted ones whose states are computed once per respondent before training
    and read at every step (`lower_cache`; 0: every layer runs at every step)."""

    def __init__(self, *args, objective: str = "sft", lower_cached: int = 0, **kwargs):
        tokenizer = kwargs["processing_class"]
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.lower_cached = lower_cached
        if lower_cached:
            for name, split in (("train_dataset", "train"), ("eval_dataset", "eval")):
                if kwargs.get(name) is not None:
                    kwargs[name] = kwargs[name].add_column("key", [f"{split}/{i}" for i in range(len(kwargs[name]))])
            kwargs.setdefault("data_collator", StatesCollator(pad, {}))
        kwargs.setdefault("data_collator", PackedCollator(pad))
        # Plain (eager) attention: a packed step's many short rows over a long cache ran 1.2x faster a step with it
        # than with PyTorch's fused CPU kernel, whose backward is slow on such shapes (bench/README)
        kwargs["model"].set_attn_implementation("eager")
        super().__init__(*args, **kwargs)
        self.objective = objective
        self.lower_states_seconds = 0.0  # computing the frozen layers' states, before the training loop
        if lower_cached:
            start = time.perf_counter()
            batch = self.args.per_device_train_batch_size
            # kept beside the checkpoints (removed with them when the run finishes, and with the run's folder when
            # its fingerprint changes), one folder per batch size and precision (a resume on another machine may
            # differ in both): a run killed while computing or using them reads them back
            precision = "bf16" if self.args.bf16 else "fp16" if self.args.fp16 else "fp32"
            stored = Path(self.args.output_dir) / "lower_states" / f"{lower_cached}-b{batch}-{precision}"
            with self.accelerator.autocast():  # the states the uncached path's steps would compute
                for split, dataset in (("train", self.train_dataset), ("eval", self.eval_dataset)):
                    if dataset is not None:
                        rows = list(dataset)
                        self.data_collator.states.update(zip((r["key"] for r in rows), lower_states(
                            self.model, rows, pad, lower_cached, batch, store=stored / split, chunk=16 * batch),
                            strict=True))
            self.lower_states_seconds = round(time.perf_counter() - start, 1)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        with self.accelerator.autocast(), lower_layers_passed(model, self.lower_cached if "root_states" in inputs
                                                             else 0):
            if self.objective == "option_likelihood":
                loss = option_loss(model, inputs)
            else:
                loss = sft_loss(model, inputs, num_items_in_batch)
                if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                    loss = loss * self.accelerator.num_processes  # as TRL: DDP averages over ranks
        if self.model.training:  # TRL's running count of trained tokens, logged as num_tokens
            self._total_train_tokens += int(self.accelerator.gather_for_metrics(inputs["packed_tokens"]).sum())
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        return (loss, {"loss": loss}) if return_outputs else loss
