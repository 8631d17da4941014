"""Open-answer generation: the project's generator against one prompt at a time, same prompts and greedy settings.

    .venv/bin/python bench/generation_throughput.py [--prompts 32] [--max-new-tokens 48] [--json]

baseline  what a user would write by hand: the 4-bit (NF4) base as training loads it, `model.generate` one prompt at
          a time.
project   `generation.LocalGenerator` (what notebook 03 runs): the merged model (`models.merged_model`, the NF4
          base de-quantised, `generation.dtype: auto`), length-sorted batches of `generation.batch_size`, left
          padding.
Prompts: open questions of the default question bank put to held-out GSS respondents' cards (nothing has to be
built first). New tokens count each answer up to and including its end-of-turn token; both rows are measured in
this run. The zero-shot base is used (an adapter folded in costs nothing at decoding time).
ceiling   what no schedule of this model beats on this machine, from two more measurements: reading every prompt
          (the project's batches, one forward pass each) and one decoding step of a single sequence; then the fewest
          steps any schedule needs (the longest answer's tokens). `ceiling_ratio` is that rate over the baseline's.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import common  # bench/common.py: this folder is first on sys.path when a script runs


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--prompts", type=int, default=32)
    parser.add_argument("--max-new-tokens", type=int, default=48)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()

    import torch

    from polypersona_utils.config import load_config
    from polypersona_utils.dataset.prompts import build_messages
    from polypersona_utils.dataset.questions import load_question_bank
    from polypersona_utils.dataset.respondents import draw_respondents
    from polypersona_utils.llm import models
    from polypersona_utils.modeling.generation import LocalGenerator, variants
    from polypersona_utils.study import StudyRun

    config = load_config("default")
    zero_shot = next(v for v in variants(config) if v.adapter_dir is None)
    open_questions = [q for q in load_question_bank(config.questions.bank_path).questions if q.question_type == "open"]
    cards = [r.card for r in draw_respondents(StudyRun(config).eligible, set(), args.prompts, config.seeds.panel)]
    chats = [build_messages(card, q.domain, q.text, "open")
             for card, q in zip(cards, (open_questions[i % len(open_questions)] for i in range(len(cards))))]
    tokenizer = models.load_tokenizer(zero_shot.model_id)
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")

    def new_tokens(texts: list[str]) -> int:  # the answer's tokens and its end-of-turn token
        return sum(len(tokenizer(t, add_special_tokens=False)["input_ids"]) + 1 for t in texts)

    plain = models.load_causal_lm(zero_shot.model_id, None, config.training.quantization,
                                  config.training.compute_dtype).eval()
    start, baseline_texts = time.perf_counter(), []
    with torch.inference_mode():
        for chat in chats:
            ids = tokenizer.apply_chat_template(chat, add_generation_prompt=True, return_tensors="pt",
                                                return_dict=True)
            out = plain.generate(**ids, max_new_tokens=args.max_new_tokens, do_sample=False, temperature=None,
                                 top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id, eos_token_id=eos)
            baseline_texts.append(tokenizer.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
    baseline_s = time.perf_counter() - start
    del plain

    dtype = models.inference_dtype(config.generation.dtype)
    generator = LocalGenerator(zero_shot, config.training.quantization, config.training.compute_dtype, dtype)
    generator.model_and_tokenizer()  # loaded before the clock starts, as the baseline's model is
    order = sorted(range(len(chats)), key=lambda i: sum(len(m["content"]) for m in chats[i]))  # as notebook 03
    size = config.generation.batch_size
    start, project_texts = time.perf_counter(), []
    for i in range(0, len(order), size):
        project_texts += generator.generate([chats[j] for j in order[i:i + size]], args.max_new_tokens, 0.0, 1.0, 0)
    project_s = time.perf_counter() - start

    baseline_tokens, project_tokens = new_tokens(baseline_texts), new_tokens(project_texts)
    prompt_tokens, prompt_s, step_s = prompt_and_step_seconds(generator, [[chats[j] for j in order[i:i + size]]
                                                                         for i in range(0, len(order), size)])
    # What no schedule of this model beats here: every prompt read at the speed of the project's own batches, then
    # the fewest decoding steps (one batch holding every prompt: as many steps as the longest answer), each at the
    # cost of a one-sequence step, which reads every weight once (a bigger batch's step costs more, never less).
    steps = min(args.max_new_tokens, max(new_tokens([t]) for t in project_texts))
    ceiling_per_s = project_tokens / (prompt_s + steps * step_s)
    result = common.result("open_answer_generation", "new tokens/s", baseline_tokens / baseline_s,
                           project_tokens / project_s, prompts=len(chats), baseline_new_tokens=baseline_tokens,
                           project_new_tokens=project_tokens, project_dtype=dtype, batch_size=size,
                           prompt_tokens=prompt_tokens, prompt_read_s=prompt_s, one_sequence_step_s=step_s,
                           fewest_steps=steps, ceiling_per_s=ceiling_per_s,
                           ceiling_ratio=ceiling_per_s * baseline_s / baseline_tokens)
    print(f"{len(chats)} open-question prompts, greedy, at most {args.max_new_tokens} new tokens: one at a time "
          f"(NF4) {result['baseline_per_s']:.1f} tok/s, LocalGenerator ({dtype}, batches of {size}) "
          f"{result['project_per_s']:.1f} tok/s: {result['ratio']:.1f}x")
    print(f"ceiling: reading the prompts ({prompt_tokens} tokens) {prompt_s:.2f} s, then {steps} steps of at least "
          f"{1000 * step_s:.1f} ms: {ceiling_per_s:.1f} tok/s, {result['ceiling_ratio']:.1f}x the baseline")
    if args.json:
        print(json.dumps(result))


def prompt_and_step_seconds(generator, batches: list[list[list[dict]]]) -> tuple[int, float, float]:
    """The prompts' tokens (padding left out) and the seconds to read them (one forward pass a batch, no decoding),
    and the seconds of one decoding step of a single sequence (from `generate` with 33 and 1 new tokens)."""
    import torch

    model, tokenizer = generator.model_and_tokenizer()

    def encode(chats):
        return tokenizer([tokenizer.apply_chat_template(c, tokenize=False, add_generation_prompt=True) for c in chats],
                         return_tensors="pt", padding=True, add_special_tokens=False)

    def generate_seconds(encoded, tokens: int) -> float:
        start = time.perf_counter()
        model.generate(**encoded, max_new_tokens=tokens, min_new_tokens=tokens, do_sample=False, temperature=None,
                       top_p=None, top_k=None, pad_token_id=tokenizer.pad_token_id)
        return time.perf_counter() - start

    encoded = [encode(b) for b in batches]
    with torch.inference_mode():
        start = time.perf_counter()
        for batch in encoded:
            model(**batch, logits_to_keep=1)
        prompt_s = time.perf_counter() - start
        one = encode(batches[0][:1])
        generate_seconds(one, 2)  # warm-up
        step_s = (generate_seconds(one, 33) - generate_seconds(one, 1)) / 32
    return sum(int(batch["attention_mask"].sum()) for batch in encoded), prompt_s, step_s


if __name__ == "__main__":
    main()
