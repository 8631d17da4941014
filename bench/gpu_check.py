"""The CUDA / 4-bit path on a GPU, through the package's own functions: QLoRA training, generation and closed-question
scoring, each beside a baseline written the plain way, in one run.

    python bench/gpu_check.py --tokenizer DIR --records FILE [--shapes smollm2,tinyllama] [--json]

Models are random-initialised (no weights travel to a GPU machine, and throughput does not depend on the weights):
`smollm2` has SmolLM2-135M-Instruct's configuration, `tinyllama` TinyLlama-1.1B-Chat's (22 layers, hidden 2048,
grouped-query attention 32/4) with SmolLM2's tokenizer and vocabulary (49,152 rather than 32,000 tokens), so the
records' text is tokenised the same way for both. `--tokenizer` is a folder with SmolLM2's tokenizer files and
config.json (`.cache/models/smollm2-135m-instruct` after a first run here); `--records` a JSONL file of the study's
training records. Rows (one JSON object per row, last line a summary):
  train-baseline  TRL's defaults on the same NF4 base (SFTConfig(): bf16, gradient checkpointing), LoRA r=16
  train-project   the project's plan and SFT settings (training.detect_plan, training.sft_kwargs), NF4 base
  generate-single one prompt at a time through backends.generate_local, NF4 base, greedy
  generate-batch  the same function on length-sorted batches (the project's generation path)
  score-naive     one forward per (prompt, option) (option_scoring.full_forward_log_probs)
  score-project   option_scoring.option_log_probs: shared prefix once, all options from it
"""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

TINYLLAMA_SHAPE = dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                       num_key_value_heads=4, max_position_embeddings=2048, rms_norm_eps=1e-5, rope_theta=10000.0)


def random_model(tokenizer_dir: Path, shape: str, out: Path) -> Path:
    """A random-initialised Llama of the named shape, saved with the tokenizer files (bf16 weights)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig.from_pretrained(tokenizer_dir)
    if shape == "tinyllama":
        for key, value in TINYLLAMA_SHAPE.items():
            setattr(config, key, value)
        config.head_dim = config.hidden_size // config.num_attention_heads
        config.tie_word_embeddings = False
    torch.manual_seed(0)
    with torch.device("cuda" if torch.cuda.is_available() else "cpu"):  # initialising 1.1B weights on a CPU is slow
        model = LlamaForCausalLM(config).to(torch.bfloat16)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    for name in tokenizer_dir.iterdir():
        if name.name.startswith(("tokenizer", "chat_template", "special_tokens", "generation_config")):
            shutil.copy(name, out / name.name)
    return out


def synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def peak_gib() -> float:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else float("nan")


def reset_peak() -> None:
    import gc

    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def train_rows(model_dir: Path, records: list[dict], steps: int, batch: int, work: Path) -> list[dict]:
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from polypersona_utils.config import load_config
    from polypersona_utils.dataset.prompts import prompt_completion
    from polypersona_utils.llm import models
    from polypersona_utils.modeling import training

    config = load_config("default", overrides={"training.per_device_batch_size": batch,
                                               "training.gradient_accumulation_steps": 1})
    dataset = Dataset.from_list([prompt_completion(r) for r in records[: steps * batch]])
    tokenizer = models.load_tokenizer(str(model_dir))
    rows = []
    for row in ("train-baseline", "train-project"):
        reset_peak()
        plan = training.detect_plan(config.training)
        model = models.load_causal_lm(str(model_dir), None, "nf4", "bfloat16", training.device_map_for(plan))
        lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
                          target_modules=training.resolve_target_modules(model, config.lora.target_modules))
        if row == "train-baseline":
            args = SFTConfig(output_dir=str(work / row), max_steps=steps, per_device_train_batch_size=batch,
                             learning_rate=2e-4, logging_steps=1, save_strategy="no", report_to=[], disable_tqdm=True)
        else:
            kwargs = training.sft_kwargs(config, plan, work / row, progress=False, evaluate=False)
            kwargs.update(max_steps=steps, save_strategy="no")
            # A GPU image may hold an older transformers than the pin (5.17 lacks `activation_checkpointing`, the
            # 5.x name of `gradient_checkpointing`, which is also set): keep the settings this version has.
            kwargs = {k: v for k, v in kwargs.items() if k in SFTConfig.__dataclass_fields__}
            args = SFTConfig(**kwargs)
        trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                             peft_config=lora)
        synchronize()
        start = time.perf_counter()
        trainer.train()
        synchronize()
        seconds = time.perf_counter() - start
        tokens = max(h.get("num_tokens", 0) for h in trainer.state.log_history)
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        frozen = all(not p.requires_grad for n, p in trainer.model.named_parameters() if "lora_" not in n)
        rows.append({"row": row, "plan": plan.reason if row == "train-project" else "TRL defaults",
                     "tokens": tokens, "seconds": round(seconds, 2), "per_s": tokens / seconds, "unit": "tokens",
                     "peak_gib": round(peak_gib(), 2), "first_loss": losses[0], "last_loss": losses[-1],
                     "base_frozen": frozen,
                     "linear_4bit_layers": sum(type(m).__name__ == "Linear4bit" for m in model.modules())})
        del trainer, model
    return rows


def generate_rows(model_dir: Path, records: list[dict], prompts: int, batch: int, max_new: int) -> list[dict]:
    import torch

    from polypersona_utils.dataset.prompts import record_messages
    from polypersona_utils.llm import models
    from polypersona_utils.llm.backends import generate_local

    tokenizer = models.load_tokenizer(str(model_dir))
    model = models.load_causal_lm(str(model_dir), None, "nf4", "bfloat16").eval()
    chats = [record_messages(r) for r in records if r["question_type"] == "open"][:prompts]
    chats.sort(key=lambda c: len(tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True)))
    rows = []
    for row, size in (("generate-single", 1), ("generate-batch", batch)):
        reset_peak()
        generate_local(model, tokenizer, chats[:size], 4, 0.0, 1.0, 0)  # warm-up
        synchronize()
        start = time.perf_counter()
        answers = []
        for i in range(0, len(chats), size):
            answers += generate_local(model, tokenizer, chats[i:i + size], max_new, 0.0, 1.0, 0)
        synchronize()
        seconds = time.perf_counter() - start
        tokens = sum(len(tokenizer(a, add_special_tokens=False)["input_ids"]) for a in answers)
        rows.append({"row": row, "prompts": len(chats), "batch": size, "new_tokens": tokens,
                     "seconds": round(seconds, 2), "per_s": tokens / seconds, "unit": "new tokens",
                     "peak_gib": round(peak_gib(), 2)})
    del model
    torch.cuda.empty_cache() if torch.cuda.is_available() else None
    return rows


def score_rows(model_dir: Path, records: list[dict], respondents: int) -> list[dict]:
    from polypersona_utils.dataset.prompts import record_messages
    from polypersona_utils.llm import models
    from polypersona_utils.llm.option_scoring import full_forward_log_probs, option_log_probs

    tokenizer = models.load_tokenizer(str(model_dir))
    model = models.load_causal_lm(str(model_dir), None, "none", "bfloat16").eval()
    by_person: dict[str, list[dict]] = {}
    for r in records:
        if len(r["options"]) == 3:
            by_person.setdefault(r["persona_id"], []).append(r)
    people = sorted(by_person.values(), key=len, reverse=True)[:respondents]
    pairs = sum(len(p) for p in people)
    rows, results = [], {}
    for row in ("score-naive", "score-project"):
        reset_peak()
        synchronize()
        start = time.perf_counter()
        out = []
        for person in people:
            chats = [record_messages(r) for r in person]
            if row == "score-naive":
                out += [full_forward_log_probs(model, tokenizer, c, r["options"]) for c, r in zip(chats, person)]
            else:
                out += option_log_probs(model, tokenizer, chats, [r["options"] for r in person])
        synchronize()
        seconds = time.perf_counter() - start
        results[row] = out
        rows.append({"row": row, "pairs": pairs, "seconds": round(seconds, 2), "per_s": pairs / seconds,
                     "unit": "respondent-item pairs", "peak_gib": round(peak_gib(), 2)})
    differences = [abs(a - b) for x, y in zip(results["score-naive"], results["score-project"]) for a, b in zip(x, y)]
    rows[-1]["max_abs_difference_vs_naive"] = max(differences)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--records", type=Path, required=True)
    parser.add_argument("--shapes", default="smollm2,tinyllama")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--respondents", type=int, default=16)
    parser.add_argument("--json", action="store_true", help="print one JSON object per row, then a summary")
    args = parser.parse_args()

    import torch
    import transformers

    from polypersona_utils.provenance import read_jsonl

    records = read_jsonl(args.records)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else f"CPU ({platform.processor()})"
    summary = {"name": "gpu_check", "machine": device, "torch": torch.__version__,
               "transformers": transformers.__version__, "ratios": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for shape in args.shapes.split(","):
            model_dir = random_model(args.tokenizer, shape, Path(tmp) / shape)
            rows = (train_rows(model_dir, records, args.steps, args.batch, Path(tmp) / "runs")
                    + generate_rows(model_dir, records, args.prompts, args.batch, args.max_new_tokens)
                    + score_rows(model_dir, records, args.respondents))
            by_row = {r["row"]: r for r in rows}
            for baseline, project in (("train-baseline", "train-project"), ("generate-single", "generate-batch"),
                                      ("score-naive", "score-project")):
                summary["ratios"][f"{shape}:{project}"] = round(by_row[project]["per_s"] / by_row[baseline]["per_s"], 2)
            for r in rows:
                r["shape"] = shape
                print(json.dumps(r) if args.json else
                      f"{shape:<10}{r['row']:<17}{r['per_s']:>10.1f} {r['unit']}/s  peak {r['peak_gib']} GiB", flush=True)
            shutil.rmtree(model_dir)
    print(json.dumps(summary))


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
