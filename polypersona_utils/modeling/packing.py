"""Respondent-packed training: all of one respondent's records in one example, the card read once.

A record is a prompt (system prompt, persona card, domain, question, options) and one or more answer turns: the
SFT objective trains on the reference turn, the option-likelihood objective scores one turn per option. The
records of one respondent share their first ~140 tokens (system prompt and card), which per-record training reads
once a record. A packed respondent is a tree of three levels: the root (the tokens every prompt of the respondent
starts with), one stem per record (the rest of its prompt but the last token), and one turn per answer (the
prompt's last token, which predicts the answer's first token, then the answer). `turn_log_probs` runs a batch of
respondents level by level: the roots as one batch, the stems as a batch that reads its root's keys and values
(the cache, selected per row), the turns as a batch that reads root and stem; so no record sees another, each
token has the position it has in its own record, and attention costs what the records' own lengths cost (one dense
block mask over a whole respondent gave 1.66x the per-record rate on this CPU, this path 2.11x: bench/README.md).
Every answer token's log-probability equals the per-record one up to float rounding (`tests/test_packing.py`), and
so do the losses and gradients.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..llm.option_scoring import continuation_ids

IGNORE = -100


@dataclass(frozen=True)
class PackedItem:
    """One record of a respondent as token ids: its prompt and its answer turns (the turn the model is trained on
    for SFT; one turn per option, `target` the real one, for the option-likelihood objective)."""

    prompt: tuple[int, ...]
    turns: tuple[tuple[int, ...], ...]
    target: int | None = None


def chat_ids(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> list[int]:
    """Token ids of a chat through the tokenizer's template, as TRL's SFTTrainer tokenizes conversations."""
    return list(tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=add_generation_prompt,
                                              return_dict=True)["input_ids"])


def sft_item(tokenizer, prompt: list[dict], completion: list[dict], max_length: int | None = None) -> PackedItem:
    """A prompt-completion example (`prompts.prompt_completion`) split as TRL splits it: the completion starts
    where the tokenized prompt and prompt+completion diverge; the whole truncated to `max_length` tokens."""
    prompt_ids = chat_ids(tokenizer, prompt, add_generation_prompt=True)
    full = chat_ids(tokenizer, prompt + completion)
    if max_length is not None:
        full = full[:max_length]
    split = 0
    while split < min(len(prompt_ids), len(full)) and prompt_ids[split] == full[split]:
        split += 1
    if split == 0 or split == len(full):
        raise ValueError("a training example has no prompt token or no answer token left: "
                         f"{tokenizer.decode(full)[:120]!r}")
    return PackedItem(tuple(full[:split]), (tuple(full[split:]),))


def option_item(tokenizer, chat: list[dict], options: Sequence[str], answer: str) -> PackedItem:
    """A closed record for the option-likelihood objective: its prompt and the assistant turn of every option
    (`option_scoring.continuation_ids`), `target` the real answer's index."""
    prompt, turns = continuation_ids(tokenizer, chat, options)
    return PackedItem(tuple(prompt), tuple(tuple(t) for t in turns), list(options).index(answer))


def pack_items(items: Sequence[PackedItem]) -> dict:
    """One respondent's items as a packed example (a plain dict, a datasets row): `root`, per item its `stem`,
    per turn its tokens (`turns`: the prompt's last token, then the answer) and item (`turn_items`), per item its
    real option (`item_targets`, -1 for SFT)."""
    if not items:
        raise ValueError("pack_items: a respondent with no item")
    stems = [item.prompt[:-1] for item in items]
    root = 0
    while root < min(len(s) for s in stems) and all(s[root] == stems[0][root] for s in stems[1:]):
        root += 1
    return {"root": list(stems[0][:root]), "stems": [list(s[root:]) for s in stems],
            "turns": [[item.prompt[-1], *turn] for item in items for turn in item.turns],
            "turn_items": [i for i, item in enumerate(items) for _ in item.turns],
            "item_targets": [-1 if item.target is None else item.target for item in items]}


def answers_in(rows: Sequence[dict]) -> int:
    """Records the packed rows train on (one answer turn each for SFT, one item for the option objective)."""
    return sum(len(r["item_targets"]) for r in rows)


def packed_batch(rows: Sequence[dict], pad_id: int) -> dict:
    """Packed examples as tensors, level by level, each right-padded: `root_ids`/`root_mask` (respondents, ...),
    `stem_ids`/`stem_mask`/`stem_parent` (items: the respondent's row), `turn_ids`/`turn_mask`/`turn_parent`
    (turns: the item's row); `turn_items`, `item_targets` and `item_turns` (items, most options; -1 pads) number
    items and turns across the batch; `labels` (turns, turn length) the answer tokens, -100 elsewhere (the turn's
    first token and padding); `packed_tokens` the real tokens."""
    import torch

    def padded(seqs: list[list[int]], fill: int):
        width = max(1, max(len(x) for x in seqs))
        return torch.tensor([list(x) + [fill] * (width - len(x)) for x in seqs])

    stems, stem_parent, turns, turn_parent, item_targets = [], [], [], [], []
    for b, r in enumerate(rows):
        first = len(stems)
        stems += r["stems"]
        stem_parent += [b] * len(r["stems"])
        turns += r["turns"]
        turn_parent += [first + i for i in r["turn_items"]]
        item_targets += r["item_targets"]
    item_turns = [[t for t, parent in enumerate(turn_parent) if parent == i] for i in range(len(stems))]
    most = max(len(t) for t in item_turns)
    turn_ids = padded(turns, pad_id)
    labels = padded([[IGNORE] + list(t[1:]) for t in turns], IGNORE)
    return {"root_ids": padded([r["root"] for r in rows], pad_id), "root_mask": padded([[1] * len(r["root"])
                                                                                         for r in rows], 0),
            "stem_ids": padded(stems, pad_id), "stem_mask": padded([[1] * len(s) for s in stems], 0),
            "stem_parent": torch.tensor(stem_parent),
            "turn_ids": turn_ids, "turn_mask": padded([[1] * len(t) for t in turns], 0),
            "turn_parent": torch.tensor(turn_parent), "labels": labels,
            "item_turns": torch.tensor([t + [-1] * (most - len(t)) for t in item_turns]),
            "item_targets": torch.tensor(item_targets),
            "packed_tokens": torch.tensor(sum(len(r["root"]) + sum(map(len, r["stems"])) + sum(map(len, r["turns"]))
                                              for r in rows))}


class PackedCollator:
    """The trainer's data collator: a list of packed examples -> `packed_batch`."""

    def __init__(self, pad_id: int):
        self.pad_id = pad_id

    def __call__(self, rows: list[dict]):
        return packed_batch(rows, self.pad_id)


def inner_model(model):
    """The causal LM inside a PEFT model (its LoRA layers stay in it), or the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def level_states(model, batch: dict):
    """The backbone's last hidden states of each level (roots, stems, turns), run level by level over the cache (the
    module's docstring). Where the batch holds the frozen lower layers' states (`root_states`, `stem_states`,
    `turn_states`: `lower_cache`), they enter in place of the token ids (the lower layers are then passed, not run)."""
    import torch

    backbone = inner_model(model).base_model
    device = batch["root_ids"].device
    states = "root_states" in batch

    def level(name, own_mask, past_mask, parent, cache, start):
        """One level's rows after their parents' tokens: keys and values selected per row, positions continued."""
        if cache is not None:
            for layer in cache.layers:  # index_select: its backward adds rows; plain indexing's sorts them (slower)
                layer.keys, layer.values = layer.keys.index_select(0, parent), layer.values.index_select(0, parent)
            past_mask = past_mask[parent]
            start = start[parent]
        mask = own_mask if past_mask is None else torch.cat([past_mask, own_mask], dim=1)
        positions = start[:, None] + torch.arange(own_mask.shape[1], device=device)[None, :]
        given = {"inputs_embeds": batch[f"{name}_states"]} if states else {"input_ids": batch[f"{name}_ids"]}
        out = backbone(**given, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True)
        return out.last_hidden_state, out.past_key_values, mask, start + own_mask.sum(dim=1)

    zero = torch.zeros(len(batch["root_ids"]), dtype=torch.long, device=device)
    root, cache, mask, start = level("root", batch["root_mask"], None, None, None, zero)
    stem, cache, mask, start = level("stem", batch["stem_mask"], mask, batch["stem_parent"], cache, start)
    turn, _, _, _ = level("turn", batch["turn_mask"], mask, batch["turn_parent"], cache, start)
    return root, stem, turn


def turn_log_probs(model, batch: dict):
    """log p(answer token) for every labelled turn position (flattened, turn by turn) and the turn each belongs to.
    The backbone runs level by level over the cache (`level_states`); the output head only where a label is read."""
    import torch
    import torch.nn.functional as F

    inner = inner_model(model)
    _, _, hidden = level_states(model, batch)
    labels = batch["labels"][:, 1:]
    answer = labels != IGNORE
    logits = inner.get_output_embeddings()(hidden[:, :-1][answer]).float()
    turn = torch.arange(len(labels), device=hidden.device)[:, None].expand_as(labels)[answer]
    return -F.cross_entropy(logits, labels[answer], reduction="none"), turn


def sft_loss(model, batch: dict, num_items_in_batch=None):
    """Sum of -log p(answer token) / the number of answer tokens (or `num_items_in_batch`, the count over a whole
    accumulated batch): `answer_loss.answer_loss` on packed rows."""
    import torch

    token_lp, _ = turn_log_probs(model, batch)
    count = len(token_lp) if num_items_in_batch is None else num_items_in_batch
    return -token_lp.sum() / torch.as_tensor(count, device=token_lp.device).clamp(min=1)


def option_scores(model, inputs: dict):
    """(items, most options) log-likelihood of each option's turn, -inf where an item has fewer options."""
    import torch

    token_lp, turn = turn_log_probs(model, inputs)
    turns = len(inputs["turn_ids"])
    per_turn = torch.zeros(turns, dtype=token_lp.dtype, device=token_lp.device).index_add(0, turn, token_lp)
    index = inputs["item_turns"]
    scores = per_turn[index.clamp(min=0)]
    return scores.masked_fill(index < 0, float("-inf"))


def option_loss(model, inputs: dict):
    """Mean over the batch's items of -log softmax(option log-likelihoods)[real option]."""
    import torch.nn.functional as F

    return F.cross_entropy(option_scores(model, inputs), inputs["item_targets"])
