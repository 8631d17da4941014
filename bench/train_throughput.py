"""Training throughput: a plain TRL baseline against the project's training path, same model, data and steps.

    .venv/bin/python bench/train_throughput.py [--steps 6] [--batch 8] [--max-length 256]

Each row runs in its own process (clean peak memory): trained (non-padding) tokens per second, the ratio to the
baseline measured in this same run, peak resident memory, and model FLOP utilisation (6 N FLOPs per trained
token, N = the base model's parameters) against this machine's matrix-multiply peak, measured here first.
Rows:
  baseline      TRL defaults (SFTConfig(): gradient checkpointing on) in fp32, padded batches, no packing
  qlora-nf4     the project's default: 4-bit NF4 base, bf16 compute, no checkpointing, length-grouped batches
  qlora-packed  the same with padding-free packing of examples (position ids separate the examples)
  lora-16bit    the project's 16-bit alternative: bf16 base and compute, length-grouped batches
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROWS = ("baseline", "qlora-nf4", "qlora-packed", "lora-16bit")


def matmul_peak_gflops(dtype_name: str, size: int = 1024, repeats: int = 20) -> float:
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9


def run_row(row: str, steps: int, batch: int, max_length: int) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from polypersona_utils import models, paths
    from polypersona_utils.config import load_config
    from polypersona_utils.provenance import read_jsonl
    from polypersona_utils.training import prompt_completion, resolve_target_modules

    torch.manual_seed(0)
    config = load_config("default")
    records = read_jsonl(paths.data_dir("default") / "train.jsonl")[: steps * batch]
    dataset = Dataset.from_list([prompt_completion(r) for r in records])
    tokenizer = models.load_tokenizer("smollm2-135m-instruct")
    quantization, dtype = {"baseline": ("none", "float32"), "qlora-nf4": ("nf4", "bfloat16"),
                           "qlora-packed": ("nf4", "bfloat16"), "lora-16bit": ("none", "bfloat16")}[row]
    model = models.load_causal_lm("smollm2-135m-instruct", None, quantization, dtype, "cpu")
    n_params = 134_515_008
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
                      target_modules=resolve_target_modules(model, config.lora.target_modules))
    common = dict(output_dir=f"/tmp/bench-{row}", max_steps=steps, per_device_train_batch_size=batch,
                  max_length=max_length, learning_rate=2e-4, logging_steps=1, save_strategy="no", report_to=[],
                  use_cpu=True, disable_tqdm=True, seed=0)
    if row == "baseline":
        args = SFTConfig(**common, bf16=False)  # TRL's defaults otherwise (checkpointing on, no packing)
    else:
        args = SFTConfig(**common, bf16=False, gradient_checkpointing=False, activation_checkpointing=False,
                         train_sampling_strategy="random" if row == "qlora-packed" else "group_by_length",
                         packing=row == "qlora-packed",
                         padding_free=row == "qlora-packed")
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=lora)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    tokens = max(h.get("num_tokens", 0) for h in trainer.state.log_history)
    return {"row": row, "tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds,
            "model_gflops_per_s": 6 * n_params * tokens / seconds / 1e9}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--max-length", type=int, default=512)
    parser.add_argument("--row", choices=ROWS, help=argparse.SUPPRESS)  # internal: one row in this process
    args = parser.parse_args()
    if args.row:
        result = run_row(args.row, args.steps, args.batch, args.max_length)
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("RESULT " + json.dumps(result))
        return
    peaks = {d: matmul_peak_gflops(d) for d in ("float32", "bfloat16")}
    print(f"matmul peak here: fp32 {peaks['float32']:.1f} GFLOP/s, bf16 {peaks['bfloat16']:.1f} GFLOP/s")
    results = []
    for row in ROWS:
        out = subprocess.run([sys.executable, __file__, "--row", row, "--steps", str(args.steps), "--batch",
                              str(args.batch), "--max-length", str(args.max_length)],
                             capture_output=True, text=True, check=True).stdout
        results.append(json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[7:]))
    base = results[0]["tokens_per_s"]
    print(f"{args.steps} steps x batch {args.batch}, max length {args.max_length}, SmolLM2-135M, LoRA r=16")
    print(f"{'row':<14}{'tokens':>8}{'tok/s':>9}{'x base':>8}{'peak MiB':>10}{'MFU fp32':>10}")
    for r in results:
        print(f"{r['row']:<14}{r['tokens']:>8}{r['tokens_per_s']:>9.1f}{r['tokens_per_s'] / base:>8.2f}"
              f"{r['peak_rss_mib']:>10.0f}{100 * r['model_gflops_per_s'] / peaks['float32']:>9.1f}%")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
