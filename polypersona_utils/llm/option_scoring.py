"""The probability a chat model gives each option of a closed question: one forward pass, no generation.

An option's score is the log-probability of the whole assistant turn that answers with it (the option's tokens and
the end-of-turn tokens the chat template adds), given the same prompt that training and generation use
(`prompts.build_messages`); a softmax over the options' scores is the model's answer distribution. Scoring the
option text, rather than a letter at the first answer token as OpinionQA and SubPOP do, fits how this study's
models answer (with the option's words: "Too little"), and options that share a first token ("Too little", "Too
much") stay apart.

`option_log_probs` scores many questions put to one respondent at once, as a tree: the prompts' shared first tokens
(the system prompt and the persona card) run through the model once; the words a group of prompts shares after
that (a question asked in two option orders) once per group; each prompt's own last tokens (its options line) once;
only the options' few tokens once per option. The output head runs only where a probability is read. The result
equals one full forward per (prompt, option) up to float rounding (tests/test_panel.py).
"""
from __future__ import annotations

from typing import Sequence


def continuation_ids(tokenizer, chat: list[dict], options: Sequence[str]) -> tuple[list[int], list[list[int]]]:
    """The prompt's token ids and, per option, the ids of the assistant turn that answers with it."""
    prompt = tokenizer(tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True),
                       add_special_tokens=False)["input_ids"]
    turns = []
    for option in options:
        full = tokenizer(tokenizer.apply_chat_template(chat + [{"role": "assistant", "content": option}],
                                                       tokenize=False), add_special_tokens=False)["input_ids"]
        if full[: len(prompt)] != prompt:  # the template must extend the prompt token by token
            raise ValueError(f"option {option!r}: its chat text does not start with the prompt's tokens")
        turns.append(full[len(prompt):])
    return prompt, turns


def _common_prefix(sequences: list[list[int]]) -> int:
    shortest = min(len(s) for s in sequences)
    length = 0
    while length < shortest and all(s[length] == sequences[0][length] for s in sequences):
        length += 1
    return min(length, shortest - 1)  # every prompt keeps at least one token of its own


def option_log_prob_tensor(model, tokenizer, chats: Sequence[list[dict]], options: Sequence[Sequence[str]],
                           groups: Sequence | None = None, per_token: bool = False):
    """(questions, options) tensor of log P(assistant turn answering with each option | chat), differentiable (the
    option-likelihood objective trains through it). The chats should share a prefix (one respondent's card) for the
    sharing to pay off, and all must have the same number of options. `groups` (one key per chat, e.g. the question
    id when a question is asked in two option orders) marks chats that share more than that prefix: the tokens a
    group's chats have in common (the question's words before its options) then run once per group. `per_token`:
    each turn's log-probability divided by its number of tokens (length-normalised, as the teacher chooses)."""
    import torch

    if len({len(o) for o in options}) != 1:
        raise ValueError("option_log_probs: every question of one call needs the same number of options")
    encoded = [continuation_ids(tokenizer, list(chat), opts) for chat, opts in zip(chats, options)]
    prompts = [prompt for prompt, _ in encoded]
    shared = _common_prefix(prompts)
    n, k = len(prompts), len(options[0])
    device = model.device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0

    def padded(rows: list[list[int]], width: int, fill: int):
        return torch.tensor([r + [fill] * (width - len(r)) for r in rows], device=device)

    rests = [p[shared:] for p in prompts]
    keys = list(dict.fromkeys(groups)) if groups is not None else [None]
    group_of = [keys.index(g) for g in groups] if groups is not None else [0] * n
    members = [[i for i in range(n) if group_of[i] == g] for g in range(len(keys))]
    # 1. The shared prefix, once. No logits are read here: only the last position's are computed.
    cache = model(torch.tensor([prompts[0][:shared]], device=device), use_cache=True,
                  logits_to_keep=1).past_key_values
    cache.batch_select_indices(torch.zeros(len(keys), dtype=torch.long, device=device))
    # 2. Each group's common tokens after the prefix, once per group (each chat keeps at least one of its own).
    stems = [rests[m[0]][:_common_prefix([rests[i] for i in m])] for m in members]
    stem_width = max(len(s) for s in stems)
    stem_mask = padded([[1] * (shared + len(s)) for s in stems], shared + stem_width, 0)
    if stem_width:
        cache = model(padded(stems, stem_width, pad), attention_mask=stem_mask,
                      position_ids=torch.arange(shared, shared + stem_width, device=device).expand(len(stems), -1),
                      past_key_values=cache, use_cache=True, logits_to_keep=1).past_key_values
    # 3. Each chat's remaining prompt tokens, right-padded (padding is masked and never read); logits only at each
    # chat's last prompt token, the one that predicts its answer's first token.
    rows = torch.tensor(group_of, device=device)
    cache.batch_select_indices(rows)
    tails = [rests[i][len(stems[group_of[i]]):] for i in range(n)]
    width = max(len(t) for t in tails)
    mask = torch.cat([stem_mask[rows], padded([[1] * len(t) for t in tails], width, 0)], dim=1)
    starts = torch.tensor([shared + len(stems[g]) for g in group_of], device=device)
    lasts = [len(t) - 1 for t in tails]
    kept = sorted(set(lasts))
    out = model(padded(tails, width, pad), attention_mask=mask, position_ids=starts[:, None]
                + torch.arange(width, device=device)[None, :], past_key_values=cache, use_cache=True,
                logits_to_keep=torch.tensor(kept, device=device))
    first = torch.log_softmax(out.logits[torch.arange(n, device=device),
                                         torch.tensor([kept.index(last) for last in lasts], device=device)].float(),
                              dim=-1)  # (n, vocab)
    # 4. Every option's turn after its prompt, all k in the prompt's row (option j at columns j * span ...) with a
    # mask that lets each see its prompt and itself only, so the prompt's cache is not copied k times.
    turns = [t for _, ts in encoded for t in ts]
    span = max(len(t) for t in turns)
    ids = padded([sum((t + [pad] * (span - len(t)) for t in ts), []) for _, ts in encoded], k * span, pad)
    positions = (starts + torch.tensor([len(t) for t in tails], device=device))[:, None] + torch.arange(
        span, device=device).repeat(k)[None, :]
    block = torch.arange(k * span, device=device) // span
    own = (block[:, None] == block[None, :]) & torch.ones(k * span, k * span, dtype=torch.bool, device=device).tril()
    attend = torch.cat([mask.bool()[:, None, None, :].expand(n, 1, k * span, mask.shape[1]),
                        own[None, None].expand(n, 1, -1, -1)], dim=3)
    later = torch.log_softmax(model(ids, attention_mask=attend, position_ids=positions,
                                    past_key_values=out.past_key_values).logits.float(), dim=-1)
    later = later.view(n * k, span, -1)  # (n * k, span, vocab)
    # Token t of a turn is predicted at position t - 1 of its row (token 0 by the prompt's last position).
    rows = torch.arange(n, device=device).repeat_interleave(k)
    total = first[rows, torch.tensor([t[0] for t in turns], device=device)]
    following = padded([t[1:] for t in turns], span, 0)
    present = padded([[1.0] * (len(t) - 1) for t in turns], span, 0.0)
    total = total + (later.gather(2, following[:, :, None])[:, :, 0] * present).sum(dim=1)
    if per_token:
        total = total / torch.tensor([len(t) for t in turns], device=device)
    return total.view(n, k)


def option_log_probs(model, tokenizer, chats: Sequence[list[dict]], options: Sequence[Sequence[str]],
                     groups: Sequence | None = None, per_token: bool = False) -> list[list[float]]:
    """log P(assistant turn answering with each option | chat) for every chat, as plain numbers (no gradient)."""
    import torch

    with torch.inference_mode():
        return option_log_prob_tensor(model, tokenizer, chats, options, groups, per_token).tolist()


def full_forward_log_probs(model, tokenizer, chat: list[dict], options: Sequence[str]) -> list[float]:
    """The plain way, for tests: each option's whole conversation through the model, one forward each."""
    import torch

    prompt, turns = continuation_ids(tokenizer, chat, options)
    scores = []
    with torch.inference_mode():
        for turn in turns:
            ids = torch.tensor([prompt + turn], device=model.device)
            logprobs = torch.log_softmax(model(ids).logits[0].float(), dim=-1)
            scores.append(sum(logprobs[len(prompt) - 1 + t, turn[t]].item() for t in range(len(turn))))
    return scores
