"""Notebook 01 end to end: personas, questions, references, records, splits, dataset card, provenance."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from .. import paths
from ..provenance import atomic_write_json, provenance_record, sha256_file, sha256_json
from ..user_files import resolve_user_path
from .dataset_card import write_dataset_card
from .personas import load_panel
from .record_import import import_files, import_records
from .records import (assign_questions, check_record, dataset_settings, make_record, plan_references,
                      training_respondent_records)
from .splits import SPLITS, TRAINING_RESPONDENTS_FILE, check_leakage, count_table, split_records, write_dataset
from .teacher import make_teacher, run_teacher


@dataclass
class BuildResult:
    splits: dict[str, list[dict]]
    counts: dict
    data_dir: Path
    files: dict[str, Path]


def build_dataset(config, progress: bool = True, teacher=None) -> BuildResult:
    """Notebook 01 end to end: personas, questions, references, records, splits, card, figure, provenance."""
    profile, seeds = config.profile, config.seeds
    out_dir = paths.data_dir(profile)
    stats = Counter()
    inputs = {"question_bank": sha256_file(config.questions.bank_path)}
    given_splits = None
    bank = config.bank
    if config.references.mode == "import":
        imported, seen = {}, {}
        for split, path in import_files(config).items():
            imported[split] = import_records(path, bank, config.references.drop_duplicates, seen, stats, split)
            inputs[f"imported/{split}"] = sha256_file(path)
        records = [r for rows in imported.values() for r in rows]
        given_splits = None if "all" in imported else imported
        panel = None
    else:
        panel = load_panel(config.personas, seeds.persona_sample)
        if config.personas.source == "file":
            inputs["persona_file"] = sha256_file(resolve_user_path(config.personas.path, "personas.path"))
        per_persona = config.questions.per_persona_counts(len(panel.cards))
        pairs = assign_questions(panel, bank, per_persona, seeds.question_sample,
                                 config.questions.linked_per_persona)
        real, requests = plan_references(pairs, panel)
        answers = {}
        if requests:
            backend = teacher or make_teacher(config.references, seeds.teacher)
            answers = run_teacher(requests.values(), backend, paths.cache_dir(profile) / "teacher.jsonl",
                                  config.references.batch_size, progress=progress)
        records = []
        for index, (persona, question) in enumerate(pairs):
            if index in real:
                records.append(make_record(persona, question, real[index], "real_respondent"))
                continue
            answer = answers[requests[index]]
            if not answer:
                stats["dropped_no_teacher_answer"] += 1  # unparseable or empty: counted, never guessed
                continue
            records.append(make_record(persona, question, answer, "teacher"))
    # Training respondents join the train split after the split: the fractions cut the persona panel.
    respondent_records = training_respondent_records(config, {r["persona_id"] for r in records})
    for record in records + respondent_records:
        check_record(record)
    if given_splits is None:
        splits = split_records(records, (config.splits.train, config.splits.val, config.splits.test),
                               seeds.split, config.splits.persona_disjoint)
    else:  # the released splits, kept as given; personas they share are counted, not moved
        splits = {name: sorted(given_splits.get(name, []), key=lambda r: r["id"]) for name in SPLITS}
        owners = Counter(pid for rows in splits.values() for pid in {r["persona_id"] for r in rows})
        stats["personas_in_several_given_splits"] = sum(1 for n in owners.values() if n > 1)
    splits["train"] = sorted(splits["train"] + respondent_records, key=lambda r: r["id"])
    check_leakage(splits, config.splits.persona_disjoint and given_splits is None)
    files = write_dataset(splits, out_dir)
    respondent_ids = sorted({r["persona_id"] for r in respondent_records})
    atomic_write_json(out_dir / TRAINING_RESPONDENTS_FILE, respondent_ids)
    counts = {
        "records": {name: len(rows) for name, rows in splits.items()},
        "personas": {name: len({r["persona_id"] for r in rows}) for name, rows in splits.items()},
        "training_respondents": len(respondent_ids),
        "training_respondent_records": len(respondent_records),
        **dict(stats),
    }
    table = count_table(splits)
    write_dataset_card(config, splits, table, counts, panel)
    provenance = provenance_record(
        params=config.to_dict(), seeds=config.to_dict()["seeds"],
        inputs={**inputs, **{f"data/{p.name}": sha256_file(p) for p in files.values()}},
        step="01_build_dataset", counts=counts, settings=dataset_settings(config),
    )
    atomic_write_json(paths.results_dir(profile) / "provenance" / "01_build_dataset.json", provenance)
    # Written last: its presence means the build finished (the Makefile target).
    atomic_write_json(out_dir / "manifest.json", {
        "files": {p.name: sha256_file(p) for p in files.values()}, "counts": counts,
        "params_sha256": sha256_json(config.to_dict() | {"source_file": None}),
    })
    return BuildResult(splits, counts, out_dir, files)
