"""Where one CPU training step of the project's QLoRA path goes: torch profiler table of a single step.

    .venv/bin/python bench/train_step_profile.py [--batch 8] [--autocast] [--dropout 0] [--head-positions 8]

SmolLM2-135M-Instruct with the NF4 base (bf16 compute) and LoRA r=16 on the seven projections, one batch of the
default profile's training split (prompt and answer, as in training), AdamW. Prints seconds per step (mean of 3
after a warm-up) and the operators that take the time. `--autocast` runs the forward pass under bf16 autocast; the
loss is on every token unless `--head-positions K` applies the output head to the last K positions only (as
`answer_loss.AnswerLossSFTTrainer` does to the answer's few tokens).
"""
from __future__ import annotations

import argparse
import time


def main() -> None:
    import torch
    from peft import LoraConfig, get_peft_model
    from torch.profiler import ProfilerActivity, profile

    from polypersona_utils import paths
    from polypersona_utils.dataset.prompts import prompt_completion
    from polypersona_utils.llm import models
    from polypersona_utils.provenance import read_jsonl

    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--autocast", action="store_true")
    parser.add_argument("--dropout", type=float, default=0.05)
    parser.add_argument("--head-positions", type=int, default=0, help="output head on the last K positions (0: all)")
    args = parser.parse_args()
    if args.head_positions < 0 or args.head_positions == 1:
        parser.error("--head-positions: 0 (every position) or at least 2 (a loss needs a next token)")

    torch.manual_seed(0)
    tokenizer = models.load_tokenizer("smollm2-135m-instruct")
    model = models.load_causal_lm("smollm2-135m-instruct", None, "nf4", "bfloat16", "cpu")
    model = get_peft_model(model, LoraConfig(
        r=16, lora_alpha=32, lora_dropout=args.dropout, task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]))
    records = read_jsonl(paths.data_dir("default") / "train.jsonl")[: args.batch]
    texts = [tokenizer.apply_chat_template(pc["prompt"] + pc["completion"], tokenize=False)
             for pc in map(prompt_completion, records)]
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    batch["labels"] = batch["input_ids"].clone()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.autocast):
            if args.head_positions:
                logits = model(**{k: v for k, v in batch.items() if k != "labels"},
                               logits_to_keep=args.head_positions).logits.float()
                labels = batch["labels"][:, -args.head_positions:]
                loss = torch.nn.functional.cross_entropy(logits[:, :-1].flatten(0, 1), labels[:, 1:].flatten())
            else:
                loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()

    step()
    start = time.perf_counter()
    for _ in range(3):
        step()
    print(f"batch {tuple(batch['input_ids'].shape)}, autocast {args.autocast}, head on "
          f"{args.head_positions or 'every'} positions: "
          f"{(time.perf_counter() - start) / 3:.2f} s per step")
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        step()
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


if __name__ == "__main__":
    main()
