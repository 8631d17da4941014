"""Teacher-written references: a local model (the one loader) or any OpenAI-compatible HTTP endpoint.

`run_teacher` is batched, shows a progress bar and is resumable. Every answer is appended to a JSONL cache keyed
by a hash of everything that determines it (backend, model, settings, messages, options), as lm-evaluation-harness
caches requests: a killed run, rerun, continues where it stopped, with no duplicate and no lost record, and
identical inputs reuse cached outputs. Batches are fixed slices of one deterministic order, and a partly cached
batch is recomputed whole, so an interrupted run ends with exactly the answers of an uninterrupted one.

Open questions: generated text, cut after its last full sentence. Closed questions: the local teacher picks the
option with the highest mean per-token log-likelihood as the assistant turn (lm-evaluation-harness' multiple
choice, length-normalised); the HTTP teacher answers in text, parsed by `parsing.parse_option` (None when
unparseable: the record is then dropped and counted, never guessed).
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Protocol, Sequence

from .backends import generate_local, openai_chat
from .parsing import parse_option
from .provenance import sha256_json
from .resumable import run_batches

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TeacherRequest:
    messages: tuple[tuple[str, str], ...]  # (role, content) pairs: hashable, ends with the user turn
    options: tuple[str, ...] = ()  # empty for open questions

    @classmethod
    def make(cls, messages: Sequence[dict], options: Sequence[str] = ()) -> "TeacherRequest":
        return cls(tuple((m["role"], m["content"]) for m in messages), tuple(options))

    def chat(self) -> list[dict[str, str]]:
        return [{"role": role, "content": content} for role, content in self.messages]


class TeacherBackend(Protocol):
    def identity(self) -> dict: ...

    def answer(self, requests: Sequence[TeacherRequest], batch_index: int) -> list[str | None]: ...


def trim_to_sentence(text: str) -> str:
    """Drop a trailing half sentence left by the token limit; keep the text whole if it has no sentence end."""
    text = text.strip()
    ends = [m.end() for m in re.finditer(r"[.!?](?=\s|$)", text)]
    return text[: ends[-1]] if ends else text


class LocalTeacher:
    """A causal LM loaded through `models.load_causal_lm` (embedded, local folder or pinned hub id)."""

    def __init__(self, model_id: str, revision: str | None, max_new_tokens: int, temperature: float,
                 top_p: float, seed: int, chat_template: str | None = None):
        from . import models

        self.settings = dict(model_id=model_id, revision=revision, max_new_tokens=max_new_tokens,
                             temperature=temperature, top_p=top_p, seed=seed, chat_template=chat_template)
        self.tokenizer = models.load_tokenizer(model_id, revision, chat_template)
        self.model = models.load_causal_lm(model_id, revision)
        self.model.eval()

    def identity(self) -> dict:
        return {"backend": "local", **self.settings}

    def _prompt(self, request: TeacherRequest) -> str:
        return self.tokenizer.apply_chat_template(request.chat(), tokenize=False, add_generation_prompt=True)

    def answer(self, requests: Sequence[TeacherRequest], batch_index: int) -> list[str | None]:
        import torch

        out: list[str | None] = [None] * len(requests)
        open_idx = [i for i, r in enumerate(requests) if not r.options]
        with torch.inference_mode():
            if open_idx:
                for i, text in zip(open_idx, self._generate([requests[i] for i in open_idx], batch_index)):
                    out[i] = text
            for i, request in enumerate(requests):
                if request.options:
                    out[i] = self._choose(request)
        return out

    def _generate(self, requests: Sequence[TeacherRequest], batch_index: int) -> list[str]:
        s = self.settings
        # A seed per batch: sampled answers do not depend on which batches an earlier, killed run finished.
        texts = generate_local(self.model, self.tokenizer, [r.chat() for r in requests], s["max_new_tokens"],
                               s["temperature"], s["top_p"], s["seed"] + batch_index)
        return [trim_to_sentence(t) for t in texts]

    def _choose(self, request: TeacherRequest) -> str:
        """The option whose assistant turn (option text and end-of-turn) has the best mean token log-prob."""
        scores = self.option_scores(request)
        return request.options[max(range(len(scores)), key=scores.__getitem__)]

    def option_scores(self, request: TeacherRequest) -> list[float]:
        """Mean token log-prob of each option's assistant turn. The prompt is run once and its key/value cache
        shared by all options (one batched forward over the option tokens) instead of one full forward per
        option: the same scores up to float rounding (tests/test_teacher.py)."""
        import torch

        from .option_scoring import continuation_ids

        prompt_ids, continuations = continuation_ids(self.tokenizer, request.chat(), request.options)
        device = self.model.device
        prompt_out = self.model(torch.tensor([prompt_ids], device=device), use_cache=True)
        first = torch.log_softmax(prompt_out.logits[0, -1].float(), dim=-1)  # predicts each option's first token
        cache = prompt_out.past_key_values
        cache.batch_repeat_interleave(len(continuations))
        width = max(len(c) for c in continuations)
        # Right padding: a real token never attends to the padding after it, so no mask is needed.
        padded = torch.tensor([c + [c[-1]] * (width - len(c)) for c in continuations], device=device)
        logprobs = torch.log_softmax(self.model(padded, past_key_values=cache, use_cache=True).logits.float(), dim=-1)
        scores = []
        for row, tokens in enumerate(continuations):
            values = [first[tokens[0]]] + [logprobs[row, t - 1, tokens[t]] for t in range(1, len(tokens))]
            scores.append(torch.stack(values).mean().item())
        return scores


class HttpTeacher:
    """An OpenAI-compatible chat-completions endpoint (vLLM, Ollama, a llama.cpp server)."""

    def __init__(self, url: str, model: str, max_new_tokens: int, temperature: float, top_p: float, seed: int,
                 timeout_s: float = 120.0):
        self.settings = dict(url=url, model=model, max_new_tokens=max_new_tokens, temperature=temperature,
                             top_p=top_p, seed=seed)
        self.timeout_s = timeout_s

    def identity(self) -> dict:
        return {"backend": "http", **self.settings}

    def _complete(self, request: TeacherRequest, batch_index: int) -> str:
        s = self.settings
        return openai_chat(s["url"], s["model"], request.chat(), s["max_new_tokens"], s["temperature"], s["top_p"],
                           s["seed"] + batch_index, self.timeout_s)

    def answer(self, requests: Sequence[TeacherRequest], batch_index: int) -> list[str | None]:
        answers: list[str | None] = []
        for request in requests:
            text = self._complete(request, batch_index)
            answers.append(parse_option(text, request.options) if request.options else trim_to_sentence(text))
        return answers


def request_key(backend_identity: dict, request: TeacherRequest) -> str:
    return sha256_json({"teacher": backend_identity, "messages": request.messages, "options": request.options})


def run_teacher(requests: Iterable[TeacherRequest], backend: TeacherBackend, cache_path: Path,
                batch_size: int, progress: bool = True) -> dict[TeacherRequest, str | None]:
    """Answer every distinct request once, resuming from `cache_path`; returns request -> answer."""
    identity = backend.identity()
    rows = run_batches(
        requests, key_of=lambda r: request_key(identity, r),
        # Similar prompt lengths share a batch (less padding).
        order_of=lambda r: (sum(len(content) for _, content in r.messages),),
        compute=lambda batch, index: [{"answer": a} for a in backend.answer(batch, index)],
        log_path=cache_path, batch_size=batch_size, desc="teacher batches", progress=progress)
    return {request: row["answer"] for request, row in rows.items()}


def make_teacher(references_config, seed: int) -> TeacherBackend:
    c = references_config
    if c.teacher_backend == "http":
        return HttpTeacher(c.http_url, c.http_model, c.max_new_tokens, c.temperature, c.top_p, seed)
    return LocalTeacher(c.teacher_model, c.teacher_revision, c.max_new_tokens, c.temperature, c.top_p, seed)
