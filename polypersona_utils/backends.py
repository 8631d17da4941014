"""The two ways the study gets text out of a model, shared by the teacher (references) and generation (answers):
a local causal LM, batched with left padding, and an OpenAI-compatible chat-completions endpoint."""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
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


def openai_chat(url: str, model: str, messages: list[dict], max_tokens: int, temperature: float, top_p: float,
                seed: int, timeout_s: float = 120.0) -> str:
    """One chat completion from an OpenAI-compatible server (vLLM, Ollama, a llama.cpp server)."""
    endpoint = url.rstrip("/") + "/chat/completions"
    body = json.dumps({"model": model, "messages": messages, "max_tokens": max_tokens, "temperature": temperature,
                       "top_p": top_p, "seed": seed}).encode()
    headers = {"Content-Type": "application/json"}
    if os.environ.get("OPENAI_API_KEY"):
        headers["Authorization"] = f"Bearer {os.environ['OPENAI_API_KEY']}"
    try:
        with urllib.request.urlopen(urllib.request.Request(endpoint, data=body, headers=headers),
                                    timeout=timeout_s) as response:
            payload = json.load(response)
    except (urllib.error.URLError, OSError) as exc:
        raise RuntimeError(f"endpoint {endpoint} did not answer: {exc}") from exc
    return payload["choices"][0]["message"]["content"] or ""
