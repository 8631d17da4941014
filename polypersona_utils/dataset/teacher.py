"""Teacher-written references: a local model (the one loader) or any OpenAI-compatible HTTP endpoint.

`run_teacher` is batched, shows a progress bar and is resumable. Every answer is appended to a JSONL cache keyed
by a hash of everything that determines it (backend, model, settings, messages, options), as lm-evaluation-harness
caches requests: a killed run, rerun, continues where it stopped, with no duplicate and no lost record, and
identical inputs reuse cached outputs. Batches are fixed slices of one deterministic order, and a partly cached
batch is recomputed whole, so an interrupted run ends with exactly the answers of an uninterrupted one.

Open questions: generated text, cut after its last full sentence. Closed questions: the local teacher picks the
option with the highest mean per-token log-likelihood as the assistant turn (lm-evaluation-harness' multiple
choice, length-normalised); the HTTP teacher answers in text, parsed by `parsing.parse_option` (None when
unparseable: the record is then dropped and counted, never guessed). The local teacher runs on the model the study
evaluates with (`models.merged_model`, in `references.dtype`: bf16 where the processor computes it natively) and
scores a batch's closed questions together (`option_scoring`), as generation and the panel do.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Protocol, Sequence

from ..llm import models
from ..llm.backends import generate_local, openai_chat
from ..llm.models import inference_dtype
from ..llm.option_scoring import option_log_probs
from ..llm.resumable import run_batches
from ..provenance import sha256_json
from .parsing import parse_option

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
    """A causal LM (embedded, local folder or pinned hub id) through `models.merged_model`, in `dtype`."""

    def __init__(self, model_id: str, revision: str | None, max_new_tokens: int, temperature: float,
                 top_p: float, seed: int, chat_template: str | None = None, dtype: str = "float32"):
        self.settings = dict(model_id=model_id, revision=revision, max_new_tokens=max_new_tokens,
                             temperature=temperature, top_p=top_p, seed=seed, chat_template=chat_template)
        if dtype != "float32":  # part of the cache key only when set, so fp32 answers cached earlier stay valid
            self.settings["dtype"] = dtype
        self.model, self.tokenizer = models.merged_model(model_id, revision, chat_template, None, "none", "float32",
                                                         dtype)

    def identity(self) -> dict:
        return {"backend": "local", **self.settings}

    def answer(self, requests: Sequence[TeacherRequest], batch_index: int) -> list[str | None]:
        out: list[str | None] = [None] * len(requests)
        open_idx = [i for i, r in enumerate(requests) if not r.options]
        if open_idx:
            for i, text in zip(open_idx, self._generate([requests[i] for i in open_idx], batch_index)):
                out[i] = text
        closed_idx = [i for i, r in enumerate(requests) if r.options]
        for i, scores in zip(closed_idx, self.option_scores([requests[i] for i in closed_idx])):
            out[i] = requests[i].options[max(range(len(scores)), key=scores.__getitem__)]
        return out

    def _generate(self, requests: Sequence[TeacherRequest], batch_index: int) -> list[str]:
        s = self.settings
        # A seed per batch: sampled answers do not depend on which batches an earlier, killed run finished.
        texts = generate_local(self.model, self.tokenizer, [r.chat() for r in requests], s["max_new_tokens"],
                               s["temperature"], s["top_p"], s["seed"] + batch_index)
        return [trim_to_sentence(t) for t in texts]

    def option_scores(self, requests: Sequence[TeacherRequest]) -> list[list[float]]:
        """Per request, the mean token log-prob of each option's assistant turn (option text and end-of-turn).
        Requests with the same number of options are scored in one call (`option_scoring.option_log_probs`: each
        prompt once, the options' tokens after it): the same scores as one full forward per option up to float
        rounding (tests/test_teacher.py)."""
        scores: list[list[float]] = [[] for _ in requests]
        by_count: dict[int, list[int]] = {}
        for i, request in enumerate(requests):
            by_count.setdefault(len(request.options), []).append(i)
        for members in by_count.values():
            means = option_log_probs(self.model, self.tokenizer, [requests[i].chat() for i in members],
                                     [requests[i].options for i in members], per_token=True)
            for i, row in zip(members, means):
                scores[i] = row
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
    return LocalTeacher(c.teacher_model, c.teacher_revision, c.max_new_tokens, c.temperature, c.top_p, seed,
                        dtype=inference_dtype(c.dtype))
