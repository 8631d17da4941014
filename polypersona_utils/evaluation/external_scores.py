"""Answers produced elsewhere (another model, a vLLM server, a published predictions file), scored against the
profile's test split with the study's metric suite, without training or generating (`make score`).

    make score PROFILE=default PREDICTIONS=answers.jsonl NAME=my-model

The predictions file holds one object per line (or one JSON list) with the record `id` and the `prediction` text,
as notebook 03 writes them; a `reference`, as the released predictions carry, must be the test record's. Closed
answers are mapped to options by the study's parser. Outputs go to `results/<profile>/scored/<NAME>/`:
`per_example_scores.csv` (the study's columns: `id`, `reference`, `prediction`, the metric columns), the tables of
notebook 04 for this variant beside the train-retrieval baseline, and a README saying whose answers these are and
which test records had none.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from .. import paths
from ..dataset.parsing import parse_option
from ..dataset.splits import load_split
from ..provenance import atomic_write_json, atomic_write_text, provenance_record, sha256_file
from ..reporting.tables import write_table
from ..user_files import UserFileError, read_json_rows
from .baselines import BASELINE, retrieval_baseline
from .scoring import add_scores, answers_frame, compute_tables, metric_settings

RESERVED_SUFFIXES = ("-lora", "-zeroshot")


def read_predictions(path: Path, test_ids: set[str], references: dict[str, str] | None = None) -> list[dict]:
    """Rows `{id, prediction}`; a row without either field, a repeated id or ids not in the test split raise
    UserFileError naming the file and the line. A row may carry the `reference` its answer was scored against (the
    released predictions do): with `references` (test id -> the split's reference), one that is not the split's
    (whitespace aside) is an error too, so that the scores are against the references the answers were made for."""
    rows, seen, unknown, differ = [], {}, [], []
    for number, row in read_json_rows(path):
        where = f"{path}: line {number}"
        if not isinstance(row, dict):
            raise UserFileError(f"{where}: expected a JSON object with 'id' and 'prediction'")
        for field in ("id", "prediction"):
            if field not in row or row[field] is None:
                raise UserFileError(f"{where}: field '{field}' is missing")
        rid = str(row["id"])
        if not isinstance(row["prediction"], str):
            raise UserFileError(f"{where}: record {rid}: field 'prediction' must be text")
        if rid in seen:
            raise UserFileError(f"{where}: record {rid}: field 'id' repeats line {seen[rid]}")
        seen[rid] = number
        if rid not in test_ids:
            unknown.append(f"{rid} (line {number})")
        elif references is not None and isinstance(row.get("reference"), str) \
                and row["reference"].split() != str(references[rid]).split():
            differ.append(f"{rid} (line {number})")
        rows.append({"id": rid, "prediction": row["prediction"]})
    if unknown:
        raise UserFileError(f"{path}: {len(unknown)} id(s) not in the profile's test split: "
                            f"{', '.join(unknown[:10])}{' ...' if len(unknown) > 10 else ''}. Score answers to "
                            f"this profile's test records, or build a profile from the test file these answers were "
                            f"made for (references.mode: import, references.import_path: {{val: ..., test: ...}}: "
                            f"its splits are kept as given, every record included)")
    if differ:
        raise UserFileError(f"{path}: field 'reference': {len(differ)} of {len(rows)} row(s) carry a reference that "
                            f"is not the test split's: {', '.join(differ[:10])}{' ...' if len(differ) > 10 else ''}. "
                            f"These answers were scored against other references: build the profile from the test "
                            f"file they were made for (references.import_path.test), or remove the rows' "
                            f"'reference' field to score them against this split's references anyway")
    return rows


def score_predictions(config, predictions_path: Path, name: str) -> dict[str, pd.DataFrame]:
    """Score `predictions_path` as variant `name`; write `results/<profile>/scored/<name>/`; return the tables."""
    if not name or not all(c.isalnum() or c in "-_." for c in name) or name.startswith("baseline-") \
            or name.endswith(RESERVED_SUFFIXES):
        raise ValueError(f"NAME={name!r}: letters, digits, '-', '_' and '.', not starting with 'baseline-' nor "
                         f"ending with {RESERVED_SUFFIXES} (the study's own variants)")
    test, train = load_split(config, "test"), load_split(config, "train")
    by_id = {r["id"]: r for r in test}
    rows = read_predictions(Path(predictions_path), set(by_id), {rid: r["reference"] for rid, r in by_id.items()})
    for row in rows:
        options = by_id[row["id"]]["options"]
        row["parsed_option"] = parse_option(row["prediction"], options) if options else None
        row["unparseable"] = bool(options) and row["parsed_option"] is None
    answered = {r["id"] for r in rows}
    missing = sorted(set(by_id) - answered)
    scored_test = [r for r in test if r["id"] in answered]
    frame = add_scores(answers_frame(scored_test, {name: rows, BASELINE: retrieval_baseline(train, scored_test)}),
                       config.metrics)
    tables = compute_tables(config, frame)
    out = paths.results_dir(config.profile) / "scored" / name
    for table_name, table in tables.items():
        write_table(table, out / "tables" / table_name, caption=f"{table_name.replace('_', ' ')}: answers of "
                                                                f"{name}, scored on {config.profile}'s test split")
    atomic_write_text(out / "per_example_scores.csv", frame.to_csv(index=False, float_format="%.6f"))
    text = tables["model_comparison"].set_index("variant")
    lines = [f"# Answers of `{name}`, scored on the `{config.profile}` test split", "",
             f"These are the answers in `{predictions_path}`, produced outside this study (not by the profile's "
             f"models); `{BASELINE}` is the study's train-retrieval baseline on the same records. "
             f"{len(rows)} of {len(test)} test records scored.", ""]
    if missing:
        lines += [f"Test records without an answer ({len(missing)}), left out of every table: "
                  + ", ".join(f"`{m}`" for m in missing[:20]) + (" ..." if len(missing) > 20 else ""), ""]
    columns = [c for c in ("bleu_nltk", "sacrebleu_corpus", "rouge1", "rouge2", "rougeL", "bertscore_f1")
               if c in text.columns]
    lines += [text[columns].to_markdown(floatfmt=".4f"), "",
              "Metric settings: `metric_settings.json`; tables: `tables/`; every example: `per_example_scores.csv`.",
              ""]
    atomic_write_text(out / "README.md", "\n".join(lines))
    atomic_write_json(out / "metric_settings.json", metric_settings(config))
    atomic_write_json(out / "manifest.json", provenance_record(
        params=config.to_dict(), seeds=config.to_dict()["seeds"], step="score", variant=name,
        inputs={"predictions": sha256_file(predictions_path),
                "data/test.jsonl": sha256_file(config.paths().data / "test.jsonl")},
        scored=len(rows), missing=missing))
    return tables
