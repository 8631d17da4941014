"""Generation throughput: the project's batched generation against one-prompt-at-a-time `generate`.

    .venv/bin/python bench/generation_throughput.py [--prompts 32] [--batch 16] [--max-new-tokens 48] [--quantization nf4]

Same model, prompts (open questions of the default profile's test split) and greedy settings in both rows, both
measured in this run. New tokens count each answer up to and including its end-of-turn token. Also reports the
metric suite's examples per second.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def new_tokens(generated, prompt_length: int, eos_id: int) -> int:
    total = 0
    for row in generated[:, prompt_length:].tolist():
        total += row.index(eos_id) + 1 if eos_id in row else len(row)
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--quantization", default="nf4", choices=["nf4", "none"])
    args = parser.parse_args()

    import torch

    from polypersona_utils import metrics, models, paths
    from polypersona_utils.config import load_config
    from polypersona_utils.generation import prompt_of
    from polypersona_utils.provenance import read_jsonl

    config = load_config("default")
    records = [r for r in read_jsonl(paths.data_dir("default") / "test.jsonl") if r["question_type"] == "open"]
    chats = [prompt_of(r) for r in records[: args.prompts]]
    tokenizer = models.load_tokenizer("smollm2-135m-instruct")
    model = models.load_causal_lm("smollm2-135m-instruct", None, args.quantization,
                                  "bfloat16" if args.quantization == "nf4" else "float32", "cpu").eval()
    settings = dict(max_new_tokens=args.max_new_tokens, do_sample=False, temperature=None, top_p=None, top_k=None,
                    pad_token_id=tokenizer.pad_token_id)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    texts = [tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats]

    def run(batch_size: int) -> tuple[int, float]:
        # Length-sorted batches, left padding: the project's generation path (generation.py / backends.py).
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        tokens, start = 0, time.perf_counter()
        with torch.inference_mode():
            for i in range(0, len(order), batch_size):
                batch = [texts[j] for j in order[i:i + batch_size]]
                enc = tokenizer(batch, return_tensors="pt", padding=True, add_special_tokens=False)
                out = model.generate(**enc, **settings)
                tokens += new_tokens(out, enc["input_ids"].shape[1], eos)
        return tokens, time.perf_counter() - start

    single_tokens, single_s = run(1)
    batched_tokens, batched_s = run(args.batch)
    print(f"SmolLM2-135M ({args.quantization}), {len(texts)} open-question prompts, greedy, "
          f"max {args.max_new_tokens} new tokens")
    print(f"{'row':<22}{'new tokens':>11}{'seconds':>9}{'tok/s':>8}{'x single':>10}")
    print(f"{'one prompt at a time':<22}{single_tokens:>11}{single_s:>9.1f}{single_tokens / single_s:>8.1f}{1:>10.2f}")
    print(f"{f'batched ({args.batch})':<22}{batched_tokens:>11}{batched_s:>9.1f}{batched_tokens / batched_s:>8.1f}"
          f"{(batched_tokens / batched_s) / (single_tokens / single_s):>10.2f}")
    predictions = [r["reference"] for r in records]
    references = list(reversed(predictions))
    metrics.text_scores(predictions[:4], references[:4], config.metrics)  # load BERTScore's model first
    start = time.perf_counter()
    metrics.text_scores(predictions, references, config.metrics)
    seconds = time.perf_counter() - start
    print(f"metric suite (BLEU, ROUGE, BERTScore, survey metrics): {len(predictions) / seconds:.1f} examples/s")


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    main()
