"""A distribution-aware objective (`training.objective: option_likelihood`, an ablation): LoRA trained on the
probability the model gives each closed record's real option among the question's options, the same quantity the
synthetic panel scores (`option_scoring`), instead of SFT on the answer's tokens.

The loss is the cross-entropy of the reference option under the softmax over the options' log-likelihoods, a
proper scoring rule: its optimum is the true distribution of answers given the card, which is what the panel asks
for (SubPOP trains on subgroup distributions with a KL loss; with one real answer per respondent and item the
expected KL is this cross-entropy up to a constant). Each step is one persona's closed records with the same number
of options: the card runs through the model once for all of them (`option_log_prob_tensor`). Open records are not
trained on. The options are shown in the record's order (mixed for training respondents, `real_answers`).

`OptionLikelihoodTrainer` offers what `training.train_model` reads from TRL's trainer (`train`, `model`,
`save_model`, `state.log_history`, `state.global_step`), so the run's fingerprint, adapter files, metrics and model
card are written the same way. It does not checkpoint: an interrupted run starts over (one epoch over the default
profile's records takes minutes).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np

from ..dataset.prompts import closed_answer, record_messages
from ..llm.option_scoring import option_log_prob_tensor


@dataclass
class TrainState:
    log_history: list[dict] = field(default_factory=list)
    global_step: int = 0


def option_groups(records: list[dict]) -> list[list[dict]]:
    """Closed records grouped by persona and number of options, in id order (one training step each)."""
    groups: dict[tuple[str, int], list[dict]] = {}
    for record in sorted(records, key=lambda r: r["id"]):
        if closed_answer(record) is not None:
            groups.setdefault((record["persona_id"], len(record["options"])), []).append(record)
    return [groups[key] for key in sorted(groups)]


def option_loss(model, tokenizer, records: list[dict], include_persona: bool = True):
    """Mean over `records` of -log softmax(option log-likelihoods)[reference]: a differentiable scalar."""
    import torch

    scores = option_log_prob_tensor(model, tokenizer, [record_messages(r, include_persona) for r in records],
                                    [r["options"] for r in records])
    target = torch.tensor([r["options"].index(closed_answer(r)) for r in records], device=scores.device)
    return torch.nn.functional.cross_entropy(scores, target)


class OptionLikelihoodTrainer:
    def __init__(self, model, tokenizer, peft_config, records: list[dict], config, include_persona: bool = True,
                 eval_records: list[dict] = ()):
        import torch
        from peft import get_peft_model

        torch.manual_seed(config.seeds.training)  # the LoRA initialisation too: same seed, same adapter
        self.model = get_peft_model(model, peft_config)
        self.tokenizer = tokenizer
        self.groups = option_groups(records)
        if not self.groups:
            raise ValueError("training.objective option_likelihood: the run's train split has no closed record "
                             "with options")
        self.examples = sum(len(g) for g in self.groups)
        self.eval_groups = option_groups(list(eval_records))
        self.config, self.include_persona = config, include_persona
        self.state = TrainState()

    def train(self, resume_from_checkpoint=None):
        import torch
        from transformers import get_scheduler

        t = self.config.training
        steps_per_epoch = len(self.groups)
        total = max(1, math.ceil(t.epochs * steps_per_epoch))
        params = [p for p in self.model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=t.learning_rate)
        scheduler = get_scheduler(t.lr_scheduler, optimizer, num_warmup_steps=round(t.warmup_ratio * total),
                                  num_training_steps=total)
        rng = np.random.default_rng(self.config.seeds.training)
        torch.manual_seed(self.config.seeds.training)
        self.model.train()
        losses, order = [], []
        for step in range(total):
            if not order:
                order = list(rng.permutation(steps_per_epoch))
            group = self.groups[order.pop(0)]
            loss = option_loss(self.model, self.tokenizer, group, self.include_persona)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, t.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad()
            losses.append(float(loss.detach()))
            self.state.global_step = step + 1
            self.state.log_history.append({"loss": losses[-1], "step": step + 1, "epoch": (step + 1) / steps_per_epoch,
                                           "learning_rate": scheduler.get_last_lr()[0]})
        self.model.eval()
        if self.eval_groups:  # the same loss on the validation split's closed records, weighted by records
            with torch.inference_mode():
                held = [(float(option_loss(self.model, self.tokenizer, g, self.include_persona)), len(g))
                        for g in self.eval_groups]
            self.state.log_history.append({"eval_loss": sum(l * n for l, n in held) / sum(n for _, n in held),
                                           "step": total})
        return SimpleNamespace(training_loss=float(np.mean(losses)))

    def save_model(self, folder: str) -> None:
        self.model.save_pretrained(folder)
