"""Notebook 03: answers to held-out records for every model variant (each base zero-shot, each adapter).

Prompts come from `prompts.record_messages`, exactly as in training. Closed questions are decoded greedily (when
`generation.greedy_for_closed`) and parsed to one of their options; what cannot be parsed is kept and flagged
`unparseable`, never dropped or guessed. Generation is batched (similar lengths together, left padding) and
resumable through `resumable.run_batches`: a log under the profile's `cache/predictions/` keyed by the inputs, so
a killed run continues with no duplicate and no gap, and ablation runs reuse the zero-shot answers of the main run
(same model, same prompts, same key). `predictions/<variant>.jsonl` then holds exactly one row per record.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from ..dataset.parsing import parse_option
from ..dataset.prompts import record_messages
from ..dataset.splits import load_split
from ..llm import models
from ..llm.backends import generate_local, openai_chat
from ..llm.models import inference_dtype
from ..llm.resumable import run_batches
from ..provenance import atomic_write_json, sha256_file, sha256_json, write_jsonl


@dataclass(frozen=True)
class Variant:
    name: str
    model_id: str
    revision: str | None
    chat_template: str | None
    adapter_dir: str | None  # None: the base model zero-shot
    include_persona: bool = True
    http_url: str | None = None  # served by an OpenAI-compatible endpoint (model `model_id`) instead of loaded
    tokenizer: str | None = None  # a served model's tokenizer and chat template (exact option probabilities)

    def base_label(self, quantization: str) -> str:
        """What tables say of the base this variant is evaluated on: the profile's `training.quantization` for
        every local variant, so that a QLoRA profile's zero-shot variant is the GGUF re-quantised to NF4 and its
        fine-tuned one the NF4 base its adapter was trained on."""
        if self.http_url:
            return "served"
        base = "NF4 (GGUF re-quantised)" if quantization == "nf4" else "GGUF de-quantised, 16/32-bit"
        return base + (" + LoRA" if self.adapter_dir else "")

    def identity(self) -> dict:
        """What decides this variant's answers (cache keys). `http_url` and `tokenizer` only when set, so that local
        variants keep the keys of runs made before served models existed."""
        return {k: v for k, v in asdict(self).items() if k not in ("http_url", "tokenizer") or v is not None}


def generation_settings(config) -> dict:
    """What notebook 03 reads: the models, decoding, the base's precision and the sampling seed. Written into the
    predictions manifest and make's step stamp."""
    return config.select(("models", "generation", "training.quantization", "training.compute_dtype",
                          "seeds.sampling", "ablation"))


def variants(config) -> list[Variant]:
    """`<model>-zeroshot` for every model; `<model>-lora` for every trained one."""
    include_persona = config.ablation.include_persona
    out = []
    for spec in config.models:
        out.append(Variant(f"{spec.name}-zeroshot", spec.model_id, spec.revision, spec.chat_template, None,
                           include_persona, spec.http_url, spec.tokenizer))
        if spec.train:
            out.append(Variant(f"{spec.name}-lora", spec.model_id, spec.revision, spec.chat_template,
                               str(config.paths().adapters / spec.name), include_persona))
    return out


def decoding(config, question_type: str) -> dict:
    g = config.generation
    greedy = question_type != "open" and g.greedy_for_closed
    return {"max_new_tokens": g.max_new_tokens[question_type], "temperature": 0.0 if greedy else g.temperature,
            "top_p": 1.0 if greedy else g.top_p}


class LocalGenerator:
    """The variant's model as the panel scores it (`models.merged_model`: the base as training saw it, the adapter
    folded in, in `dtype`): one model evaluated by notebooks 03 and 06, and on a CPU faster to decode than the 4-bit
    base with a separate adapter (bench/generation_throughput.py)."""

    def __init__(self, variant: Variant, quantization: str, compute_dtype: str, dtype: str = "float32"):
        self.variant, self.quantization, self.compute_dtype, self.dtype = variant, quantization, compute_dtype, dtype
        adapter_sha256 = (sha256_file(Path(variant.adapter_dir) / "adapter_model.safetensors")
                          if variant.adapter_dir else None)
        self.settings = {"backend": "local", "quantization": quantization, "compute_dtype": compute_dtype,
                         "adapter_sha256": adapter_sha256, "merged_dtype": dtype}
        self.loaded: tuple | None = None  # (model, tokenizer), loaded at the first prompt: a rerun whose answers
        # are all cached (an ablation run's zero-shot variant) loads nothing

    def model_and_tokenizer(self):
        if self.loaded is None:
            v = self.variant
            self.loaded = models.merged_model(v.model_id, v.revision, v.chat_template, v.adapter_dir,
                                              self.quantization, self.compute_dtype, self.dtype)
        return self.loaded

    def generate(self, chats: Sequence[list[dict]], max_new_tokens: int, temperature: float, top_p: float,
                 seed: int) -> list[str]:
        model, tokenizer = self.model_and_tokenizer()
        return generate_fitting_memory(
            lambda part, part_seed: generate_local(model, tokenizer, part, max_new_tokens, temperature, top_p,
                                                   part_seed), list(chats), seed)


def is_out_of_memory(error: BaseException) -> bool:
    return isinstance(error, MemoryError) or "out of memory" in str(error).lower()


def generate_fitting_memory(generate, chats: list, seed: int) -> list[str]:
    """Run `generate(chats, seed)`; when the batch does not fit in memory, halve it and try again, so the batch
    size adapts to the memory at hand (each half gets its own seed)."""
    import gc

    try:
        return generate(chats, seed)
    except (RuntimeError, MemoryError) as error:
        if not is_out_of_memory(error) or len(chats) == 1:
            raise
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
    half = len(chats) // 2
    return (generate_fitting_memory(generate, chats[:half], 2 * seed)
            + generate_fitting_memory(generate, chats[half:], 2 * seed + 1))


class HttpGenerator:
    """An OpenAI-compatible server (vLLM for the paper profile on a GPU cluster); same records come out."""

    def __init__(self, url: str, model: str):
        self.url, self.model = url, model
        self.settings = {"backend": "http", "url": url, "model": model}

    def generate(self, chats: Sequence[list[dict]], max_new_tokens: int, temperature: float, top_p: float,
                 seed: int) -> list[str]:
        return [openai_chat(self.url, self.model, chat, max_new_tokens, temperature, top_p, seed).strip()
                for chat in chats]


def generate_predictions(config, variant: Variant, split: str = "test", generator=None,
                         progress: bool = True) -> Path:
    """Answer every record of `split` with `variant`; returns `predictions/<variant>.jsonl`."""
    records = {r["id"]: r for r in load_split(config, split)}
    if not records:
        raise ValueError(f"{config.paths(split).name}: the {split} split has no records"
                         + (f" in the held-out domain '{config.ablation.heldout_domain}'"
                            if config.ablation.heldout_domain else ""))
    generator = generator or (HttpGenerator(variant.http_url, variant.model_id) if variant.http_url else
                              LocalGenerator(variant, config.training.quantization, config.training.compute_dtype,
                                             inference_dtype(config.generation.dtype)))
    identity = {"variant": variant.identity(), "generator": generator.settings, "seed": config.seeds.sampling}
    prompts = {rid: record_messages(r, variant.include_persona) for rid, r in records.items()}

    def key_of(rid: str) -> str:
        # The record id is part of the key: identical prompts (no persona card) still get one sample each, and
        # an ablation run reuses the main run's answers for the same records.
        return sha256_json({**identity, "id": rid, "decoding": decoding(config, records[rid]["question_type"]),
                            "messages": prompts[rid]})

    def compute(batch: Sequence[str], batch_index: int) -> list[dict]:
        texts: dict[str, str] = {}
        groups: dict[tuple, list[str]] = {}
        for rid in batch:  # one generate call per decoding setting within the batch
            groups.setdefault(tuple(sorted(decoding(config, records[rid]["question_type"]).items())), []).append(rid)
        for group_index, (settings, rids) in enumerate(sorted(groups.items())):
            d = dict(settings)
            outputs = generator.generate([prompts[rid] for rid in rids], d["max_new_tokens"], d["temperature"],
                                         d["top_p"], config.seeds.sampling + 1000 * batch_index + group_index)
            texts.update(zip(rids, outputs))
        rows = []
        for rid in batch:
            options = records[rid]["options"]
            parsed = parse_option(texts[rid], options) if options else None
            rows.append({"id": rid, "prediction": texts[rid], "parsed_option": parsed,
                         "unparseable": bool(options) and parsed is None})
        return rows

    done = run_batches(
        records, key_of=key_of,
        order_of=lambda rid: (records[rid]["question_type"] == "open", sum(len(m["content"]) for m in prompts[rid])),
        compute=compute, log_path=config.paths().cache / "predictions" / f"{variant.name}.jsonl",
        batch_size=config.generation.batch_size, desc=f"generate {variant.name}", progress=progress)
    out = config.paths(split).predictions / f"{variant.name}.jsonl"
    rows = sorted(({k: v for k, v in row.items() if k not in ("key", "id")}
                   | {"id": rid, "variant": variant.name, "split": split} for rid, row in done.items()),
                  key=lambda r: r["id"])
    write_jsonl(out, rows)
    return out


def generate_all(config, split: str = "test", progress: bool = True) -> dict[str, Path]:
    """Every variant of the profile; then `predictions/manifest.json`, written last (the Make target)."""
    files = {v.name: generate_predictions(config, v, split, progress=progress) for v in variants(config)}
    atomic_write_json(config.paths(split).predictions / "manifest.json",
                      {"settings": generation_settings(config), "split": split,
                       "files": {name: {"file": path.name, "sha256": sha256_file(path)} for name, path in files.items()}})
    return files
