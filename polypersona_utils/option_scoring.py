"""The probability a chat model gives each option of a closed question: one forward pass, no generation.

An option's score is the log-probability of the whole assistant turn that answers with it (the option's tokens and
the end-of-turn tokens the chat template adds), given the same prompt that training and generation use
(`prompts.build_messages`); a softmax over the options' scores is the model's answer distribution. Scoring the
option text, rather than a letter at the first answer token as OpinionQA and SubPOP do, fits how this study's
models answer (with the option's words: "Too little"), and options that share a first token ("Too little", "Too
much") stay apart.

`option_log_probs` scores many questions put to one respondent at once: the prompts share their first tokens (the
system prompt and the persona card), which run through the model once; each question's remaining prompt tokens run
once; only the options' few tokens run once per option. The result equals one full forward per (prompt, option)
up to float rounding (tests/test_panel.py).
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


def option_log_prob_tensor(model, tokenizer, chats: Sequence[list[dict]], options: Sequence[Sequence[str]]):
    """(questions, options) tensor of log P(assistant turn answering with each option | chat), differentiable (the
    option-likelihood objective trains through it); the chats should share a prefix (one respondent's card) for the
    sharing to pay off, and all must have the same number of options."""
    import torch

    if len({len(o) for o in options}) != 1:
        raise ValueError("option_log_probs: every question of one call needs the same number of options")
    encoded = [continuation_ids(tokenizer, list(chat), opts) for chat, opts in zip(chats, options)]
    prompts = [prompt for prompt, _ in encoded]
    shared = _common_prefix(prompts)
    n, k = len(prompts), len(options[0])
    device = model.device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    # 1. The shared prefix, once.
    cache = model(torch.tensor([prompts[0][:shared]], device=device), use_cache=True).past_key_values
    # 2. Each prompt's own tokens, right-padded; padding is masked and never read.
    rests = [p[shared:] for p in prompts]
    width = max(len(r) for r in rests)
    ids = torch.tensor([r + [pad] * (width - len(r)) for r in rests], device=device)
    mask = torch.tensor([[1] * shared + [1] * len(r) + [0] * (width - len(r)) for r in rests], device=device)
    positions = torch.arange(shared, shared + width, device=device).expand(n, width)
    cache.batch_repeat_interleave(n)
    out = model(ids, attention_mask=mask, position_ids=positions, past_key_values=cache, use_cache=True)
    last = torch.tensor([len(r) - 1 for r in rests], device=device)
    first = torch.log_softmax(out.logits[torch.arange(n, device=device), last].float(), dim=-1)  # (n, vocab)
    # 3. Every option's turn after its prompt: row i * k + j is option j of prompt i.
    turns = [t for _, ts in encoded for t in ts]
    span = max(len(t) for t in turns)
    cache = out.past_key_values
    cache.batch_repeat_interleave(k)
    ids = torch.tensor([t + [pad] * (span - len(t)) for t in turns], device=device)
    mask = torch.cat([mask.repeat_interleave(k, dim=0),
                      torch.tensor([[1] * len(t) + [0] * (span - len(t)) for t in turns], device=device)], dim=1)
    positions = (shared + torch.tensor([len(r) for r in rests], device=device).repeat_interleave(k)[:, None]
                 + torch.arange(span, device=device)[None, :])
    later = torch.log_softmax(model(ids, attention_mask=mask, position_ids=positions,
                                    past_key_values=cache).logits.float(), dim=-1)  # (n * k, span, vocab)
    # Token t of a turn is predicted at position t - 1 of its row (token 0 by the prompt's last position).
    rows = torch.arange(n, device=device).repeat_interleave(k)
    total = first[rows, torch.tensor([t[0] for t in turns], device=device)]
    following = torch.tensor([t[1:] + [0] * (span - len(t) + 1) for t in turns], device=device)
    present = torch.tensor([[1.0] * (len(t) - 1) + [0.0] * (span - len(t) + 1) for t in turns], device=device)
    total = total + (later.gather(2, following[:, :, None])[:, :, 0] * present).sum(dim=1)
    return total.view(n, k)


def option_log_probs(model, tokenizer, chats: Sequence[list[dict]], options: Sequence[Sequence[str]]
                     ) -> list[list[float]]:
    """log P(assistant turn answering with each option | chat) for every chat, as plain numbers (no gradient)."""
    import torch

    with torch.inference_mode():
        return option_log_prob_tensor(model, tokenizer, chats, options).tolist()


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
