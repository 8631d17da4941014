"""Closed-question scoring: the panel's own path against the naive one, same model, respondents and items.

    .venv/bin/python bench/scoring_throughput.py [--respondents 6] [--json]

baseline  what a user would write by hand: for each (respondent, item), one greedy `generate` of the answer with the
          study's prompt and max_new_tokens, then `parsing.parse_option`; fp32, one prompt at a time. Gives one
          answer (the mode), not a distribution.
project   `panel.synthetic.respondent_distributions` on the scoring model (`models.merged_model`,
          `panel.dtype: auto`): every option's probability, in the given and the reversed option order, the card's
          tokens run once per respondent. Gives the whole distribution, order-averaged: twice the prompts of the baseline.
Both count (respondent, item) pairs per second. Needs nothing built: the respondents come from the GSS data.
ceiling   the project's token positions (counted) at two FLOPs a weight, at the matmul peak measured in the run;
          `ceiling_ratio` is that rate over the baseline's.
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
    parser.add_argument("--respondents", type=int, default=6)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = parser.parse_args()

    import torch

    from polypersona_utils.config import load_config
    from polypersona_utils.dataset.parsing import parse_option
    from polypersona_utils.dataset.prompts import build_messages
    from polypersona_utils.dataset.questions import load_question_bank
    from polypersona_utils.dataset.respondents import draw_respondents, linked_questions
    from polypersona_utils.llm import models
    from polypersona_utils.llm.backends import generate_local
    from polypersona_utils.modeling.generation import variants
    from polypersona_utils.panel.synthetic import respondent_distributions
    from polypersona_utils.study import StudyRun

    torch.manual_seed(0)
    config = load_config("default")
    questions = {q.question_id: q for q in linked_questions(load_question_bank(config.questions.bank_path))}
    panel = draw_respondents(StudyRun(config).eligible, set(), args.respondents, config.seeds.panel)
    pairs = sum(len(r.answers) for r in panel)
    zero_shot = next(v for v in variants(config) if v.adapter_dir is None)

    tokenizer = models.load_tokenizer(zero_shot.model_id)
    plain = models.load_causal_lm(zero_shot.model_id).eval()
    start = time.perf_counter()
    parsed = 0
    for respondent in panel:
        for qid in respondent.answers:
            q = questions[qid]
            chat = build_messages(respondent.card, q.domain, q.text, q.question_type, q.options)
            text = generate_local(plain, tokenizer, [chat], config.generation.max_new_tokens[q.question_type], 0.0,
                                  1.0, 0)[0]
            parsed += parse_option(text, q.options) is not None
    baseline_s = time.perf_counter() - start
    del plain

    dtype = models.inference_dtype(config.panel.dtype)
    model, tokenizer = models.merged_model(zero_shot.model_id, zero_shot.revision, zero_shot.chat_template, None,
                                           config.training.quantization, config.training.compute_dtype, dtype)
    positions = []  # token positions of every forward call (padding included): a list append, costing nothing
    hook = model.register_forward_pre_hook(lambda _, args, kwargs: positions.append(
        (kwargs.get("input_ids") if kwargs.get("input_ids") is not None else args[0]).numel()), with_kwargs=True)
    start = time.perf_counter()
    for respondent in panel:
        respondent_distributions(model, tokenizer, respondent, questions, True)
    project_s = time.perf_counter() - start
    hook.remove()

    # What this scoring cannot beat here: the positions the tree put through the model, each costing two FLOPs a
    # weight outside the embeddings, at this machine's matmul peak in the scoring dtype (attention and the output
    # head left out: the ceiling is generous).
    weights = sum(p.numel() for name, p in model.named_parameters() if "embed" not in name and "lm_head" not in name)
    peak = common.matmul_peak_gflops(dtype)
    ceiling_per_s = pairs / (sum(positions) * 2 * weights / (peak * 1e9))
    result = common.result("closed_question_scoring", "respondent-item pairs/s", pairs / baseline_s,
                           pairs / project_s, pairs=pairs, baseline_parsed_share=parsed / pairs, scoring_dtype=dtype,
                           positions_per_respondent=sum(positions) / len(panel), matmul_peak_gflops=peak,
                           ceiling_per_s=ceiling_per_s, ceiling_ratio=ceiling_per_s * baseline_s / pairs)
    print(f"{pairs} pairs of {len(panel)} respondents: naive generate+parse {result['baseline_per_s']:.2f}/s "
          f"({parsed}/{pairs} parsed), panel scoring {result['project_per_s']:.2f}/s ({dtype}, both option orders, "
          f"full distributions): {result['ratio']:.1f}x")
    print(f"ceiling: {result['positions_per_respondent']:.0f} positions a respondent at the {dtype} matmul peak "
          f"({peak:.0f} GFLOP/s): {ceiling_per_s:.1f} pairs/s, {result['ceiling_ratio']:.1f}x the baseline")
    if args.json:
        print(json.dumps(result))


if __name__ == "__main__":
    main()
