"""Notebook 02: LoRA / QLoRA instruction tuning with TRL's SFTTrainer (its loss at answer positions only: `answer_loss`).

The paper's method is the default: base weights in 4-bit NF4 with double quantization (bitsandbytes; it runs on CPU
as well as CUDA) and LoRA adapters on q/k/v/o/gate/up/down projections. Records become conversational
prompt-completion examples through `prompts.build_messages`, so the loss falls on the assistant answer only
(TRL masks the prompt tokens with -100). A finished run with the same fingerprint (config, data, model) is not
trained again; an interrupted one resumes from its last checkpoint.
"""
from __future__ import annotations

import json
import logging
import os
import resource
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from .. import paths
from ..config_runs import run_record_settings
from ..dataset.prompts import prompt_completion
from ..dataset.splits import run_view, training_respondent_ids
from ..llm import models
from ..llm.models import inference_dtype
from ..provenance import atomic_write_json, atomic_write_text, package_versions, read_jsonl, sha256_file, sha256_json
from ..reporting.tables import profile_banner
from .figures import loss_figure
from .option_training import OptionLikelihoodTrainer

log = logging.getLogger(__name__)

# Where an architecture names the paper's projections differently. None: the architecture has no such layer.
MODULE_ALIASES = {
    "phi": {"o_proj": "dense", "up_proj": "fc1", "down_proj": "fc2", "gate_proj": None},
}
COMPLETE_MARKER = "training_complete.json"


def resolve_target_modules(model, requested: list[str]) -> list[str]:
    """The paper's module names mapped onto this architecture; a name that does not exist is an error."""
    model_type = model.config.model_type
    aliases = MODULE_ALIASES.get(model_type, {})
    linear = {name.rsplit(".", 1)[-1] for name, module in model.named_modules()
              if "Linear" in type(module).__name__ and name}
    resolved = []
    for name in requested:
        actual = aliases.get(name, name)
        if actual is None:
            log.info("LoRA: %s has no %s layer; skipped", model_type, name)
            continue
        if actual not in linear:
            raise ValueError(f"LoRA target module '{name}'" + (f" (as '{actual}')" if actual != name else "")
                             + f" does not exist in this {model_type} model; its linear layers: {sorted(linear)}")
        resolved.append(actual)
    return list(dict.fromkeys(resolved))


@dataclass(frozen=True)
class TrainingPlan:
    """The precision and batch path a run takes, and why (logged and written into the model card)."""

    device: str
    quantization: str
    compute_dtype: str
    bf16_autocast: bool
    gradient_checkpointing: bool
    per_device_batch_size: int
    gradient_accumulation_steps: int
    reason: str


def plan_training(training, cuda_available: bool, gpu_memory_gib: float | None = None, cpu_bf16: bool = False
                  ) -> TrainingPlan:
    """CUDA: bf16 compute and activation checkpointing, per-device batch fitted to memory at the same effective
    batch. CPU: the configured precision (4-bit works here too), no checkpointing (memory is not the limit), and
    bf16 autocast when the compute dtype is bf16 and the processor computes bf16 natively (`cpu_bf16`): a sixth of
    a step on the default profile (bench/train_step_profile.py --autocast). A processor without native bf16
    computes in float32 instead: emulated bf16 matrix multiplies ran 8x slower than float32 on an AMD EPYC with
    AVX2 only (2026-12-07), which made a smoke training step take a minute."""
    effective = training.per_device_batch_size * training.gradient_accumulation_steps
    if not cuda_available:
        autocast = cpu_bf16 and training.compute_dtype == "bfloat16"
        compute = training.compute_dtype if cpu_bf16 else "float32"
        why = "" if compute == training.compute_dtype else f" (not {training.compute_dtype}: no native bf16)"
        return TrainingPlan("cpu", training.quantization, compute, autocast, False,
                            training.per_device_batch_size, training.gradient_accumulation_steps,
                            f"no CUDA device: CPU path, {training.quantization} base, {compute} compute{why}"
                            f"{' under bf16 autocast (native bf16)' if autocast else ''}, batch "
                            f"{training.per_device_batch_size} x {training.gradient_accumulation_steps}")
    per_device = training.per_device_batch_size
    if gpu_memory_gib is not None:  # small cards: fewer examples per step, more accumulation, same effective batch
        cap = 1 if gpu_memory_gib < 12 else 2 if gpu_memory_gib < 24 else per_device
        per_device = max(d for d in range(1, min(per_device, cap) + 1) if effective % d == 0)
    return TrainingPlan("cuda", training.quantization, "bfloat16", True, True, per_device, effective // per_device,
                        f"CUDA ({gpu_memory_gib or 0:.0f} GiB): {training.quantization} base, bf16 compute, "
                        f"activation checkpointing, batch {per_device} x {effective // per_device}")


def detect_plan(training) -> TrainingPlan:
    import torch

    if torch.cuda.is_available():
        memory = torch.cuda.get_device_properties(0).total_memory / 2**30
        return plan_training(training, True, memory)
    return plan_training(training, False, cpu_bf16=inference_dtype("auto") == "bfloat16")


def sft_kwargs(config, plan: TrainingPlan, output_dir: Path, progress: bool, evaluate: bool = True,
               packed: bool = False) -> dict:
    """Every SFTConfig setting that matters, spelled out (TRL's own defaults differ: bf16 and gradient
    checkpointing default to on). A plain dict, so the CUDA path can be checked on a machine without CUDA.
    `packed`: the rows are packed respondents (`packed_trainer`), tokenized already and collated by their own
    collator; evaluation reads the loss only."""
    t = config.training
    packing = dict(remove_unused_columns=False, dataset_kwargs={"skip_prepare_dataset": True},
                   prediction_loss_only=True) if packed else {}
    # a packed step reads its roots' keys and values from the cache, which activation checkpointing turns off
    checkpointing = plan.gradient_checkpointing and not packed
    return dict(**packing,
        output_dir=str(output_dir),
        num_train_epochs=t.epochs,
        per_device_train_batch_size=plan.per_device_batch_size,
        per_device_eval_batch_size=plan.per_device_batch_size,
        gradient_accumulation_steps=plan.gradient_accumulation_steps,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,  # transformers 5: a value below 1 is a fraction of the training steps
        max_grad_norm=t.max_grad_norm,
        max_length=t.max_seq_length,
        completion_only_loss=True,
        bf16=plan.bf16_autocast,
        # transformers 5 renamed it; TRL 1.x still defaults the old name to True, so both are set.
        gradient_checkpointing=checkpointing,
        activation_checkpointing=checkpointing,
        use_cpu=plan.device == "cpu",
        eval_strategy="epoch" if evaluate else "no",
        save_strategy="steps",
        save_steps=t.save_steps,
        save_total_limit=2,
        logging_steps=1,
        seed=config.seeds.training,
        data_seed=config.seeds.training,
        report_to=[] if t.report_to == "none" else [t.report_to],
        disable_tqdm=not progress,
        dataloader_num_workers=0,
    )


def lora_config(config, model):
    """The profile's LoRA settings on this architecture's projections, on every decoder layer or on the top
    `lora.top_layers` (peft's `layers_to_transform`; the adapter's config records them, so loading it adapts the
    same layers)."""
    from peft import LoraConfig

    layers, top = model.config.num_hidden_layers, config.lora.top_layers
    if top is not None and top > layers:
        raise ValueError(f"lora.top_layers: {top}, but {type(model).__name__} has {layers} decoder layers")
    where = {} if top is None else {"layers_to_transform": list(range(layers - top, layers)),
                                    "layers_pattern": "layers"}
    return LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha, lora_dropout=config.lora.dropout,
                      target_modules=resolve_target_modules(model, config.lora.target_modules), task_type="CAUSAL_LM",
                      **where)


def frozen_below(config, model) -> int:
    """The decoder layers below the adapted ones (`lora.top_layers`; 0 when every layer is adapted): their states
    are computed once per respondent on the packed path (`lower_cache`)."""
    return model.config.num_hidden_layers - config.lora.top_layers if config.lora.top_layers else 0


def sft_config(config, plan: TrainingPlan, output_dir: Path, progress: bool, evaluate: bool = True,
               packed: bool = False, overrides: dict | None = None):
    from trl import SFTConfig

    return SFTConfig(**{**sft_kwargs(config, plan, output_dir, progress, evaluate, packed), **(overrides or {})})


def last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint that finished saving. transformers writes trainer_state.json last, so a run killed
    mid-save leaves a folder without a readable one: that folder is removed and the one before it is used."""
    if not folder.exists():
        return None
    candidates = sorted(folder.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[-1]), reverse=True)
    for candidate in candidates:
        try:
            json.loads((candidate / "trainer_state.json").read_text(encoding="utf-8"))
            return candidate
        except (FileNotFoundError, ValueError) as exc:  # only a cut-off save; other I/O errors are raised
            log.warning("%s was cut off while saving (interrupted run: %s); removed", candidate, exc)
            shutil.rmtree(candidate)
    return None


def device_map_for(plan: TrainingPlan):
    """Under `accelerate launch` each process puts its whole (4-bit) model on its own GPU; otherwise the plan's."""
    local_rank = int(os.environ.get("LOCAL_RANK", "-1"))
    if plan.device == "cuda" and int(os.environ.get("WORLD_SIZE", "1")) > 1 and local_rank >= 0:
        return {"": local_rank}
    return plan.device


@dataclass
class TrainResult:
    run_dir: Path
    metrics: dict
    trained_now: bool


def adapter_settings(config, include_persona: bool | None = None) -> dict:
    """What changes an adapter besides its model and data (checkpoint interval and logging do not). The run
    fingerprint and make's step stamp both come from here."""
    # the defaults of settings added later (objective, packing) keep the fingerprints adapters were trained under
    training = {k: v for k, v in asdict(config.training).items() if k not in ("save_steps", "report_to")
                and not (k == "objective" and v == "sft") and not (k == "packing" and v == "record")}
    return {  # keyed by the configuration's dotted names
        # lora.top_layers unset keeps the fingerprints adapters were trained under before it existed
        "lora": {k: v for k, v in asdict(config.lora).items() if not (k == "top_layers" and v is None)},
        "training": training, "seeds.training": config.seeds.training,
        "ablation.include_persona": config.ablation.include_persona if include_persona is None else include_persona,
        "ablation.heldout_domain": config.ablation.heldout_domain,
        "ablation_runs": run_record_settings(asdict(config.ablation_runs)) if config.run else None,  # the main run
        # uses whole splits; of the section, what changes a run's records or model
        # Only when set, so that runs without training respondents keep the fingerprints they were trained under
        **({"ablation.training_respondents": config.ablation.training_respondents}
           if config.run and config.ablation.training_respondents else {}),
        **({"ablation.respondent_pool": "survey", "ablation.training_respondents": config.ablation.training_respondents}
           if config.run and config.ablation.respondent_pool == "survey" else {}),
    }


def training_settings(config) -> dict:
    """Make's stamp for notebook 02: every trained model's adapter settings."""
    return {"models": [asdict(spec) for spec in config.models if spec.train], **adapter_settings(config)}


def run_fingerprint(config, spec, data_files: dict[str, Path], include_persona: bool) -> dict:
    return {"model": asdict(spec), **adapter_settings(config, include_persona),
            "data": {name: sha256_file(path) for name, path in data_files.items()}}


def train_model(config, spec, run_name: str | None = None, include_persona: bool = True, progress: bool = True,
                data_dir: Path | None = None) -> TrainResult:
    """Train one model of the profile; skip when an identical run finished, resume when one was interrupted."""
    import torch
    from datasets import Dataset
    from transformers import set_seed

    from .answer_loss import AnswerLossSFTTrainer

    run_name = run_name or spec.name
    include_persona = include_persona and config.ablation.include_persona
    run_dir = config.paths().adapters / run_name
    data_dir = data_dir or paths.data_dir(config.profile)
    data_files = {split: data_dir / f"{split}.jsonl" for split in ("train", "val")}
    respondents = training_respondent_ids(data_dir)
    views = {split: run_view(read_jsonl(path), split, config, respondents) for split, path in data_files.items()}
    fingerprint = run_fingerprint(config, spec, data_files, include_persona)
    if config.ablation.respondent_pool == "survey":  # its records come from the survey, not the dataset's files
        fingerprint["data"] = {split: sha256_json(rows) for split, rows in views.items()}
    key = sha256_json(fingerprint)
    marker = run_dir / COMPLETE_MARKER
    if marker.exists() and json.loads(marker.read_text())["fingerprint_sha256"] == key:
        log.info("%s: finished with the same config and data; not trained again", run_name)
        return TrainResult(run_dir, json.loads((run_dir / "metrics.json").read_text()), False)
    checkpoints = run_dir / "checkpoints"
    started = run_dir / "fingerprint.json"
    if started.exists() and json.loads(started.read_text()).get("sha256") != key:
        log.info("%s: config or data changed since the last attempt; starting over", run_name)
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(started, {"sha256": key, "fingerprint": fingerprint})

    set_seed(config.seeds.training)
    plan = detect_plan(config.training)
    log.info("%s: %s", run_name, plan.reason)
    tokenizer = models.load_tokenizer(spec.model_id, spec.revision, spec.chat_template)
    model = models.load_causal_lm(spec.model_id, spec.revision, plan.quantization, plan.compute_dtype,
                                  device_map=device_map_for(plan))
    peft_config = lora_config(config, model)
    if config.training.packing == "respondent":
        from .packed_trainer import PackedTrainer, answers_in, packed_rows

        datasets = {split: Dataset.from_list(packed_rows(rows, tokenizer, config.training.objective, include_persona,
                                                         config.training.max_seq_length))
                    for split, rows in views.items()}
        if len(datasets["train"]) == 0:
            raise ValueError(f"{run_name}: the train split has nothing to train on with objective "
                             f"{config.training.objective}")
        has_val = len(datasets["val"]) > 0
        trainer = PackedTrainer(model=model, args=sft_config(config, plan, checkpoints, progress, has_val, packed=True),
                                train_dataset=datasets["train"], eval_dataset=datasets["val"] if has_val else None,
                                processing_class=tokenizer, peft_config=peft_config,
                                objective=config.training.objective, lower_cached=frozen_below(config, model))
        examples = answers_in(list(datasets["train"]))
    elif config.training.objective == "option_likelihood":
        trainer = OptionLikelihoodTrainer(model, tokenizer, peft_config, views["train"], config, include_persona,
                                          views["val"])
        examples = trainer.examples
    else:
        datasets = {split: Dataset.from_list([prompt_completion(r, include_persona) for r in rows])
                    for split, rows in views.items()}
        has_val = len(datasets["val"]) > 0
        args = sft_config(config, plan, checkpoints, progress, evaluate=has_val)
        trainer = AnswerLossSFTTrainer(model=model, args=args, train_dataset=datasets["train"],
                                       eval_dataset=datasets["val"] if has_val else None, processing_class=tokenizer,
                                       peft_config=peft_config)
        examples = len(datasets["train"])
    resume_from = last_complete_checkpoint(checkpoints)
    if resume_from:
        log.info("%s: resuming from %s", run_name, resume_from)
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    outcome = trainer.train(resume_from_checkpoint=str(resume_from) if resume_from else None)
    wall_s = time.perf_counter() - start
    trainable, total = trainer.model.get_nb_trainable_parameters()
    trainer.save_model(str(run_dir))
    tokenizer.save_pretrained(str(run_dir))
    history = trainer.state.log_history
    metrics = {
        "train_loss": whole_run_train_loss(history),
        "train_loss_this_session": outcome.training_loss,
        "val_loss": [h["eval_loss"] for h in history if "eval_loss" in h],
        "global_steps": trainer.state.global_step,
        "train_examples": examples,
        "wall_time_s_this_session": round(wall_s, 1),  # the training loop
        "lower_states_s_this_session": getattr(trainer, "lower_states_seconds", 0.0),  # before it (lower_cache)
        "resumed_from": resume_from.name if resume_from else None,
        "trainable_parameters": trainable,
        "total_parameters": total,
        "trainable_share": trainable / total,
        "peak_gpu_memory_gib": torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None,
        # Whole-process high-water mark (includes loading): an upper bound on training's own memory.
        "peak_process_memory_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        "plan": asdict(plan),
    }
    atomic_write_json(run_dir / "metrics.json", metrics)
    atomic_write_json(run_dir / "log_history.json", history)
    atomic_write_text(run_dir / "README.md", model_card(config, spec, run_name, fingerprint, metrics))
    loss_figure(history, config.paths().training_results / "figures" / f"loss_{run_name}", run_name)
    shutil.rmtree(checkpoints, ignore_errors=True)  # the finished adapter is in run_dir
    atomic_write_json(marker, {"fingerprint_sha256": key})  # written last: its presence means done
    return TrainResult(run_dir, metrics, True)


def whole_run_train_loss(history: list[dict]) -> float | None:
    """Mean training loss over every optimizer step of the run, resumed or not. A resumed trainer's own figure
    averages only the steps after the resume; the log history (restored from the checkpoint) holds them all. Each
    logged loss averages the steps since the previous log, so it is weighted by how many steps it covers."""
    logged = sorted((h["step"], h["loss"]) for h in history if "loss" in h and "step" in h)
    if not logged:
        return None
    total, previous = 0.0, 0
    for step, loss in logged:
        total += loss * (step - previous)
        previous = step
    return total / previous


def model_card(config, spec, run_name: str, fingerprint: dict, metrics: dict) -> str:
    t, lora = config.training, config.lora
    lines = [
        f"# Adapter `{run_name}`", "", profile_banner(config), "",
        f"- Base model: `{spec.model_id}` at revision `{spec.revision or 'embedded/local'}`",
        f"- Data: train.jsonl sha256 `{fingerprint['data']['train'][:16]}...`, "
        f"{metrics['train_examples']} examples; persona in prompt: {fingerprint['ablation.include_persona']}",
        f"- LoRA: r={lora.r}, alpha={lora.alpha}, dropout={lora.dropout}, targets {lora.target_modules}",
        f"- Trainer: lr {t.learning_rate}, {t.epochs} epochs, {t.lr_scheduler} schedule, warmup {t.warmup_ratio}, "
        f"max grad norm {t.max_grad_norm}, max length {t.max_seq_length}, seed {config.seeds.training}",
        f"- Path: {metrics['plan']['reason']}",
        f"- Trainable parameters: {metrics['trainable_parameters']:,} of {metrics['total_parameters']:,} "
        f"({100 * metrics['trainable_share']:.2f} %)",
        f"- Train loss {metrics['train_loss']:.4f}; val loss per epoch: "
        + ", ".join(f"{v:.4f}" for v in metrics["val_loss"]),
        f"- Wall time: {metrics['wall_time_s_this_session']} s"
        + (f" (resumed from {metrics['resumed_from']})" if metrics["resumed_from"] else ""),
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in package_versions(
            ("torch", "transformers", "peft", "trl", "bitsandbytes")).items()),
        "",
    ]
    return "\n".join(lines)


def train_adapters(config, progress: bool = True) -> dict[str, TrainResult]:
    """Every trainable model of the profile; then `adapters/manifest.json`, written last (the Make target)."""
    results = {spec.name: train_model(config, spec, progress=progress) for spec in config.models if spec.train}
    # Kept with the results (artifacts/ is not committed): trainable parameters, time, memory, losses.
    atomic_write_json(config.paths().training_results / "training_metrics.json",
                      {name: r.metrics for name, r in results.items()})
    atomic_write_json(config.paths().adapters / "manifest.json", {
        name: {"run_dir": str(r.run_dir.relative_to(paths.WORKSPACE)) if r.run_dir.is_relative_to(
            paths.WORKSPACE) else str(r.run_dir),
               "fingerprint_sha256": json.loads((r.run_dir / COMPLETE_MARKER).read_text())["fingerprint_sha256"]}
        for name, r in results.items()})
    return results
