"""The SFT loss with the output head run only at answer positions.

The loss of a prompt-completion example falls on the answer's tokens (TRL labels the prompt -100), a few of a record's
200 to 300 tokens. TRL 1.x's fused LM head projects only the labelled positions on CUDA (its Triton path), but on
other devices it projects every position in chunks, forward and again in backward: about a quarter of a CPU training
step spent on a 49k-token head for tokens the loss ignores. `AnswerLossSFTTrainer` runs the backbone, takes the
hidden states of the labelled positions and applies the head and cross-entropy there only: the same loss, summed
over answer tokens and divided by their count as TRL does (`tests/test_training.py` compares the two on real
examples). TRL's token-accuracy and entropy metrics are not computed; its token count is kept.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from trl import SFTTrainer


def answer_logits(model, inputs: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(logits at every labelled position, their labels, the labelled mask (batch, length - 1)): the backbone on
    every position, the output head only where a label is read. The label at a position is predicted at the
    position before it; `attention_mask` may be a padding mask or a (batch, 1, length, length) block mask
    (`packing`), with `position_ids`."""
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # PEFT's LoRA layers stay in it
    labels = inputs["labels"][:, 1:]
    answer = labels != -100
    features = {k: inputs[k] for k in ("input_ids", "attention_mask", "position_ids") if k in inputs}
    hidden = inner.base_model(**features, use_cache=False).last_hidden_state[:, :-1]
    return inner.get_output_embeddings()(hidden[answer]).float(), labels[answer], answer


def answer_loss(model, inputs: dict, num_items_in_batch=None) -> torch.Tensor:
    """Sum of -log p(label) over labelled positions / their count (or `num_items_in_batch`, the count over a whole
    accumulated batch, as the trainer passes it)."""
    logits, labels, answer = answer_logits(model, inputs)
    total = F.cross_entropy(logits, labels, reduction="sum")
    count = answer.sum() if num_items_in_batch is None else num_items_in_batch
    return total / torch.as_tensor(count, device=total.device).clamp(min=1)


class AnswerLossSFTTrainer(SFTTrainer):
    """SFTTrainer whose loss projects the answer positions only (the module's docstring says why)."""

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        if return_outputs:  # nothing here needs the model's outputs; keep TRL's path for whoever does
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        # The backbone is called directly, past the forward that accelerate wraps in autocast: enter it here.
        with self.accelerator.autocast():
            loss = answer_loss(model, inputs, num_items_in_batch)
        if self.args.average_tokens_across_devices and num_items_in_batch is not None:
            loss = loss * self.accelerator.num_processes  # as TRL: DDP averages, the count covered every rank
        if self.model.training:  # TRL's running count of trained (non-padding) tokens, logged as num_tokens
            self._total_train_tokens += int(self.accelerator.gather_for_metrics(inputs["attention_mask"].sum()).sum())
            self._metrics["train"]["num_tokens"] = [self._total_train_tokens]
        return loss
