"""The two ways the study gets text out of a model, shared by the teacher (references) and generation (answers):
a local causal LM, batched with left padding, and an OpenAI-compatible chat-completions endpoint."""
from __future__ import annotations

import os
from functools import lru_cache
from typing import Sequence


def sampling_kwargs(temperature: float, top_p: float) -> dict:
    """temperature 0 means greedy decoding (and no sampling settings, which transformers would warn about)."""
    if temperature > 0:
        return dict(do_sample=True, temperature=temperature, top_p=top_p)
    return dict(do_sample=False, temperature=None, top_p=None, top_k=None)


def generate_local(model, tokenizer, chats: Sequence[list[dict]], max_new_tokens: int, temperature: float,
                   top_p: float, seed: int) -> list[str]:
    """One batch of chats through `model.generate` (left padding); the new text of each, stripped."""
    import torch

    torch.manual_seed(seed)
    prompts = [tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True) for chat in chats]
    encoded = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
    with torch.inference_mode():
        generated = model.generate(**encoded, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                                   **sampling_kwargs(temperature, top_p))
    new_tokens = generated[:, encoded["input_ids"].shape[1]:]
    return [text.strip() for text in tokenizer.batch_decode(new_tokens, skip_special_tokens=True)]


class EndpointError(RuntimeError):
    """An endpoint that answered with an error status after the retries."""

    def __init__(self, message: str, status: int):
        super().__init__(message)
        self.status = status


@lru_cache(maxsize=8)
def openai_client(url: str, timeout_s: float, retries: int):
    """The `openai` package's client for an OpenAI-compatible server; it retries connection errors, 408, 409, 429
    and 5xx answers `retries` times with exponential backoff."""
    from openai import OpenAI

    return OpenAI(base_url=url, api_key=os.environ.get("OPENAI_API_KEY") or "not-needed", timeout=timeout_s,
                  max_retries=retries)


def chat_completion(url: str, model: str, messages: list[dict], timeout_s: float = 120.0, retries: int = 2,
                    **settings):
    """One chat completion (the client's response object); RuntimeError naming the endpoint when it never
    answers or answers with an error after the retries."""
    import openai

    endpoint = url.rstrip("/") + "/chat/completions"
    try:
        return openai_client(url, timeout_s, retries).chat.completions.create(model=model, messages=messages,
                                                                              **settings)
    except openai.APIConnectionError as exc:  # timeouts included
        raise RuntimeError(f"endpoint {endpoint} did not answer: {exc}") from exc
    except openai.APIStatusError as exc:
        raise EndpointError(f"endpoint {endpoint} answered {exc.status_code}: {exc.message}", exc.status_code) \
            from exc


def openai_chat(url: str, model: str, messages: list[dict], max_tokens: int, temperature: float, top_p: float,
                seed: int, timeout_s: float = 120.0, retries: int = 2) -> str:
    """The text of one chat completion from an OpenAI-compatible server (vLLM, Ollama, a llama.cpp server)."""
    response = chat_completion(url, model, messages, timeout_s, retries, max_tokens=max_tokens,
                               temperature=temperature, top_p=top_p, seed=seed)
    return response.choices[0].message.content or ""


def completion(url: str, model: str, prompt: str, timeout_s: float = 120.0, retries: int = 2, **settings):
    """One text completion (the client's response object); RuntimeError naming the endpoint when it never answers,
    EndpointError when it answers with an error after the retries."""
    import openai

    endpoint = url.rstrip("/") + "/completions"
    try:
        return openai_client(url, timeout_s, retries).completions.create(model=model, prompt=prompt, **settings)
    except openai.APIConnectionError as exc:  # timeouts included
        raise RuntimeError(f"endpoint {endpoint} did not answer: {exc}") from exc
    except openai.APIStatusError as exc:
        raise EndpointError(f"endpoint {endpoint} answered {exc.status_code}: {exc.message}", exc.status_code) \
            from exc


def openai_next_token(url: str, model: str, prompt: str, top_logprobs: int, logit_bias: dict[str, float],
                      timeout_s: float = 120.0, retries: int = 2) -> tuple[str, float, dict[str, float]] | None:
    """The next token after `prompt` (raw text, the chat template already applied) from the completions endpoint:
    (the greedy token under `logit_bias`, its log-probability, the `top_logprobs` most likely tokens as {text:
    log-probability}); None when the endpoint gives no log-probabilities."""
    response = completion(url, model, prompt, timeout_s, retries, max_tokens=1, temperature=0.0,
                          logprobs=top_logprobs, logit_bias=logit_bias or None)
    logprobs = response.choices[0].logprobs
    if logprobs is None or not logprobs.tokens:
        return None
    return logprobs.tokens[0], logprobs.token_logprobs[0], dict(logprobs.top_logprobs[0] or {})
