"""Training throughput: the plain TRL recipe against the project's training path, same model, examples and steps.

    .venv/bin/python bench/train_throughput.py [--steps 6] [--json]
    .venv/bin/python bench/train_throughput.py --real-answers [--respondents 12] [--epochs 1] [--rows a,b] [--json]

baseline  the paper's QLoRA recipe written by hand with TRL's defaults: the NF4 base (bf16 compute), LoRA r=16,
          alpha=32, dropout 0.05 on the seven projections, `SFTConfig` defaults (gradient checkpointing on, bf16
          autocast) with the profile's learning rate and per-device batch.
project   what notebook 02 runs: `training.detect_plan`, `training.sft_config` and `training.lora_config` on the
          default profile (no checkpointing on CPU, no LoRA dropout, bf16 autocast where native), trained by
          `answer_loss.AnswerLossSFTTrainer` (the output head at answer positions only).
--real-answers: real answers per second over the same respondents' answers, one epoch each, one row a lever:
per-record        the baseline: the per-record path (`training.packing: record`) with the study's prompt (every
                  item asked whole): `AnswerLossSFTTrainer` on one prompt-completion example per answer,
                  `per_device_batch_size` answers a step.
packed            packed by respondent (`training.packing: respondent`), the same prompt:
                  `packed_trainer.PackedTrainer` on one packed row per respondent (the card read once for all their
                  items), `per_device_batch_size` respondents a step.
packed-preamble   + the GSS preamble said once per respondent (`prompts.SHARED_PREAMBLES` set to it in that row's
                  process only; the study's prompt asks every item whole).
packed-top<k>     + LoRA on the top k decoder layers only (`lora.top_layers`; --top-layers, default 8 of 30): no
                  backward pass below them.
packed-top<k>-unquantised  + the base unquantised instead of NF4 (`training.quantization: none`): bf16 where the
                  processor computes it natively, else float32 (`training.plan_training`); every layer run at every
                  step (`PackedTrainer(lower_cached=0)`).
packed-top<k>-unquantised-cached  + the frozen layers' states computed once per respondent before training and read
                  at every step (`lower_cache`, what notebook 02 runs with `lora.top_layers`): it gains from the
                  second epoch on (--epochs).
--epochs: epochs of every row (answers per second counts every epoch's answers); --rows: these rows only.
The JSON line's ratio is the fastest lever row against per-record (against the first row given when --rows leaves
per-record out); each row's own ratio is in `rows`.
Examples: real GSS respondents' answers to the linked items through the study's prompt (`prompts.prompt_completion`),
the kind of record that makes up four fifths of the default training split; nothing has to be built first. Each
row runs in its own process (clean peak memory); trained (non-padding) tokens per second, and model FLOP
utilisation (6 N FLOPs per trained token, N = the base's parameters; LoRA skips the base's weight gradients, so
this overstates the work) against this machine's matmul peak in the row's compute dtype.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import common  # bench/common.py: this folder is first on sys.path when a script runs

ROWS = ("baseline", "project")
REAL_ANSWER_ROWS = ("per-record", "packed", "packed-preamble", "packed-top", "packed-top-unquantised",
                    "packed-top-unquantised-cached")


def row_settings(row: str, top_layers: int) -> tuple[dict, bool]:
    """(the default profile's overrides for `row`, whether it says the GSS preamble once per respondent)."""
    packed = {"training.packing": "respondent"}
    unquantised = packed | {"lora.top_layers": top_layers, "training.quantization": "none",
                            "training.compute_dtype": "bfloat16"}
    return {"per-record": ({"training.packing": "record"}, False),
            "packed": (packed, False),
            "packed-preamble": (packed, True),
            "packed-top": (packed | {"lora.top_layers": top_layers}, True),
            "packed-top-unquantised": (unquantised, True),
            "packed-top-unquantised-cached": (unquantised, True)}[row]


def row_label(row: str, top_layers: int) -> str:
    return row.replace("-top", f"-top{top_layers}")


def training_examples(config, count: int) -> list[dict]:
    from polypersona_utils.dataset.prompts import prompt_completion
    from polypersona_utils.dataset.questions import load_question_bank
    from polypersona_utils.dataset.respondents import draw_respondents, linked_questions
    from polypersona_utils.study import StudyRun

    questions = {q.question_id: q for q in linked_questions(load_question_bank(config.questions.bank_path))}
    examples = []
    for respondent in draw_respondents(StudyRun(config).eligible, set(), count, config.seeds.panel):
        for qid, answer in respondent.answers.items():
            q = questions[qid]
            examples.append(prompt_completion({"persona": respondent.card, "domain": q.domain, "question": q.text,
                                               "question_type": q.question_type, "options": list(q.options),
                                               "reference": answer}))
    return examples[:count]


def respondents_records(config, count: int) -> list[dict]:
    """Every linked answer of `count` held-out respondents as training records (the study's prompt)."""
    from polypersona_utils.dataset.questions import load_question_bank
    from polypersona_utils.dataset.respondents import draw_respondents, linked_questions
    from polypersona_utils.study import StudyRun

    questions = {q.question_id: q for q in linked_questions(load_question_bank(config.questions.bank_path))}
    return [{"id": f"{r.persona_id}-{qid}", "persona_id": r.persona_id, "persona": r.card,
             "domain": questions[qid].domain, "question": questions[qid].text,
             "question_type": questions[qid].question_type, "options": list(questions[qid].options),
             "reference": answer}
            for r in draw_respondents(StudyRun(config).eligible, set(), count, config.seeds.panel)
            for qid, answer in r.answers.items()]


def run_real_answers_row(row: str, respondents: int, work: Path, top_layers: int, epochs: int = 1) -> dict:
    """`epochs` epochs over `respondents` respondents' answers with `row`'s settings (`row_settings`)."""
    import torch
    from datasets import Dataset

    from polypersona_utils.config import load_config
    from polypersona_utils.dataset import prompts
    from polypersona_utils.dataset.prompts import prompt_completion
    from polypersona_utils.llm import models
    from polypersona_utils.modeling import training
    from polypersona_utils.modeling.packed_trainer import PackedTrainer, answers_in, packed_rows

    torch.manual_seed(0)
    overrides, preamble_once = row_settings(row, top_layers)
    if preamble_once:  # this row's process only
        prompts.SHARED_PREAMBLES = (prompts.GSS_SPENDING_PREAMBLE,)
    config = load_config("default", overrides=overrides)
    packed = config.training.packing == "respondent"
    spec = config.models[0]
    records = respondents_records(config, respondents)
    tokenizer = models.load_tokenizer(spec.model_id)
    plan = training.detect_plan(config.training)
    model = models.load_causal_lm(spec.model_id, None, plan.quantization, plan.compute_dtype, "cpu")
    args = training.sft_config(config, plan, work / row, progress=False, evaluate=False,
                               packed=packed, overrides={"save_strategy": "no", "num_train_epochs": epochs})
    start = time.perf_counter()  # the trainer's set-up counted in every row: the cached row's states are made there
    if packed:
        rows = packed_rows(records, tokenizer, "sft", True, config.training.max_seq_length)
        assert answers_in(rows) == len(records)
        lower_cached = training.frozen_below(config, model) if row.endswith("-cached") else 0
        trainer = PackedTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows),
                                processing_class=tokenizer, peft_config=training.lora_config(config, model),
                                lower_cached=lower_cached)
    else:
        from polypersona_utils.modeling.answer_loss import AnswerLossSFTTrainer

        trainer = AnswerLossSFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(
            [prompt_completion(r) for r in records]), processing_class=tokenizer,
            peft_config=training.lora_config(config, model))
    trainer.train()
    seconds = time.perf_counter() - start
    tokens = max(h.get("num_tokens", 0) for h in trainer.state.log_history)
    trainable = sum(p.numel() for p in trainer.model.parameters() if p.requires_grad)
    return {"row": row_label(row, top_layers), "answers": len(records) * epochs, "respondents": respondents,
            "epochs": epochs, "steps": trainer.state.global_step, "tokens": tokens, "seconds": seconds,
            "answers_per_s": len(records) * epochs / seconds, "tokens_per_s": tokens / seconds,
            "trainable_parameters": trainable, "overrides": overrides, "preamble_once": preamble_once}


def real_answers_main(args) -> None:
    import tempfile

    results = {}
    with tempfile.TemporaryDirectory() as work:
        for row in args.rows.split(",") if args.rows else REAL_ANSWER_ROWS:
            out = subprocess.run([sys.executable, __file__, "--real-answers", "--row", row, "--respondents",
                                  str(args.respondents), "--top-layers", str(args.top_layers), "--epochs",
                                  str(args.epochs), "--work", work],
                                 capture_output=True, text=True, check=True).stdout
            results[row] = json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[7:])
    print(f"{args.epochs} epoch(s) over {args.respondents} GSS 2018 respondents' real answers, SmolLM2-135M, the "
          "default profile's training settings")
    print(f"{'row':<32}{'answers':>8}{'steps':>7}{'tokens':>8}{'seconds':>9}{'answers/s':>11}{'x':>7}"
          f"{'peak MiB':>10}")
    base = results.get("per-record", next(iter(results.values())))["answers_per_s"]
    for r in results.values():
        r["ratio"] = r["answers_per_s"] / base
        print(f"{r['row']:<32}{r['answers']:>8}{r['steps']:>7}{r['tokens']:>8}{r['seconds']:>9.1f}"
              f"{r['answers_per_s']:>11.2f}{r['ratio']:>7.2f}{r['peak_rss_mib']:>10.0f}")
    if args.json:
        best = max(results.values(), key=lambda r: r["answers_per_s"])
        print(json.dumps(common.result("training on real answers", "answers_per_s", base, best["answers_per_s"],
                                       project_row=best["row"], respondents=args.respondents, rows=results)))


def run_row(row: str, steps: int, work: Path) -> dict:
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from trl import SFTConfig, SFTTrainer

    from polypersona_utils.config import load_config
    from polypersona_utils.llm import models
    from polypersona_utils.modeling import training

    torch.manual_seed(0)
    config = load_config("default")
    spec, batch = config.models[0], config.training.per_device_batch_size
    dataset = Dataset.from_list(training_examples(config, steps * batch))
    tokenizer = models.load_tokenizer(spec.model_id)
    if row == "baseline":
        model = models.load_causal_lm(spec.model_id, None, "nf4", "bfloat16", "cpu")
        lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, task_type="CAUSAL_LM",
                          target_modules=training.resolve_target_modules(model, config.lora.target_modules))
        args = SFTConfig(output_dir=str(work / row), max_steps=steps, per_device_train_batch_size=batch,
                         learning_rate=config.training.learning_rate, save_strategy="no", report_to=[],
                         use_cpu=True, disable_tqdm=True, seed=0)
    else:
        plan = training.detect_plan(config.training)
        model = models.load_causal_lm(spec.model_id, None, plan.quantization, plan.compute_dtype, "cpu")
        lora = training.lora_config(config, model)
        args = SFTConfig(**{**training.sft_kwargs(config, plan, work / row, progress=False, evaluate=False),
                            "max_steps": steps, "save_strategy": "no"})
    trainer_class = SFTTrainer
    if row == "project":
        from polypersona_utils.modeling.answer_loss import AnswerLossSFTTrainer as trainer_class
    trainer = trainer_class(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                            peft_config=lora)
    start = time.perf_counter()
    trainer.train()
    seconds = time.perf_counter() - start
    tokens = max(h.get("num_tokens", 0) for h in trainer.state.log_history)
    n_params = sum(p.numel() for p in models.load_causal_lm(spec.model_id).parameters())
    return {"row": row, "tokens": tokens, "seconds": seconds, "tokens_per_s": tokens / seconds,
            "model_gflops_per_s": 6 * n_params * tokens / seconds / 1e9,
            "gradient_checkpointing": bool(args.gradient_checkpointing), "bf16_autocast": bool(args.bf16),
            "lora_dropout": lora.lora_dropout}


def main() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    parser.add_argument("--real-answers", action="store_true", help="answers per second, per-record against packed")
    parser.add_argument("--respondents", type=int, default=12, help="--real-answers: respondents trained on")
    parser.add_argument("--top-layers", type=int, default=8, help="--real-answers: k of the packed-top<k> rows")
    parser.add_argument("--epochs", type=int, default=1, help="--real-answers: epochs of every row")
    parser.add_argument("--rows", help="--real-answers: these rows only, comma-separated (default: every row)")
    parser.add_argument("--row", choices=ROWS + REAL_ANSWER_ROWS, help=argparse.SUPPRESS)  # internal: one row
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.row and args.real_answers:
        result = run_real_answers_row(args.row, args.respondents, args.work, args.top_layers, args.epochs)
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("RESULT " + json.dumps(result))
        return
    if args.real_answers:
        real_answers_main(args)
        return
    if args.row:
        result = run_row(args.row, args.steps, args.work)
        result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("RESULT " + json.dumps(result))
        return
    import tempfile

    peaks = {dtype: common.matmul_peak_gflops(dtype) for dtype in ("float32", "bfloat16")}
    results = {}
    with tempfile.TemporaryDirectory() as work:
        for row in ROWS:
            out = subprocess.run([sys.executable, __file__, "--row", row, "--steps", str(args.steps), "--work", work],
                                 capture_output=True, text=True, check=True).stdout
            results[row] = json.loads(next(l for l in out.splitlines() if l.startswith("RESULT "))[7:])
    print(f"{args.steps} steps of the default profile's batch, SmolLM2-135M, NF4 base; matmul peak fp32 "
          f"{peaks['float32']:.1f}, bf16 {peaks['bfloat16']:.1f} GFLOP/s")
    print(f"{'row':<10}{'tokens':>8}{'tok/s':>9}{'x base':>8}{'peak MiB':>10}{'MFU':>8}  settings (MFU against the "
          f"peak of the row's compute: bf16 under autocast)")
    base = results["baseline"]["tokens_per_s"]
    for r in results.values():
        r["mfu"] = r["model_gflops_per_s"] / peaks["bfloat16" if r["bf16_autocast"] else "float32"]
        print(f"{r['row']:<10}{r['tokens']:>8}{r['tokens_per_s']:>9.1f}{r['tokens_per_s'] / base:>8.2f}"
              f"{r['peak_rss_mib']:>10.0f}{100 * r['mfu']:>7.1f}%  checkpointing "
              f"{r['gradient_checkpointing']}, autocast {r['bf16_autocast']}, dropout {r['lora_dropout']}")
    if args.json:
        print(json.dumps(common.result("training", "trained tokens/s", base, results["project"]["tokens_per_s"],
                                       steps=args.steps, rows=results, matmul_peak_gflops=peaks)))


if __name__ == "__main__":
    main()
