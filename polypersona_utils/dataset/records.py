"""Records, references and leakage-checked splits: everything notebook 01 produces.

Record (contract): id, persona_id, domain, question_id, question, question_type, options, persona, messages,
reference, reference_source; `messages` is [system, user, assistant] from `prompts.build_messages` and the
assistant turn equals `reference`.

Longer than 300 lines because building, importing, splitting and checking records are one contract (the record
above): each step checks what the next relies on.
"""
from __future__ import annotations

import dataclasses
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import paths
from .personas import PersonaError, PersonaPanel
from .prompts import build_messages, with_known_stance
from ..provenance import (atomic_write_json, provenance_record, read_jsonl, sha256_file, sha256_json,
                         write_jsonl)
from .parsing import parse_option
from .questions import CLOSED_TYPES, QUESTION_TYPES, Question, QuestionBank
from .teacher import TeacherRequest
from ..user_files import UserFileError, read_json_rows, resolve_user_path

log = logging.getLogger(__name__)
SPLITS = ("train", "val", "test")
RECORD_FIELDS = ("id", "persona_id", "domain", "question_id", "question", "question_type", "options", "persona",
                 "messages", "reference", "reference_source")
REFERENCE_SOURCES = ("real_respondent", "teacher", "imported")
# What notebook 01 reads from the configuration: its provenance and make's step stamp both come from here.
DATASET_SETTINGS = ("profile", "description", "personas", "questions", "references", "real_answers", "splits",
                    "seeds.persona_sample", "seeds.question_sample", "seeds.split", "seeds.teacher")
# The persona ids of the training respondents (`real_answers`), written beside the splits.
TRAINING_RESPONDENTS_FILE = "training_respondents.json"


def dataset_settings(config) -> dict:
    return config.select(DATASET_SETTINGS)


class LeakageError(AssertionError):
    """The splits share a persona (when persona-disjoint) or a (persona, question) pair."""


class RecordImportError(ValueError):
    """A malformed Polypersona-format file; the message names the record and the field."""


def assign_questions(panel: PersonaPanel, bank: QuestionBank, per_persona: list[int], seed: int,
                     linked_per_persona: int = 0) -> list[tuple[dict, Question]]:
    """Persona i gets `per_persona[i]` distinct questions, domains drawn in the paper's proportions.

    A question's weight is its domain quota divided by the domain's number of questions. For survey personas a
    linked closed question whose real answer is missing is not eligible (its answer would have to be invented),
    and `linked_per_persona` of their questions are first drawn among the linked closed items they answered.
    """
    rng = np.random.default_rng(seed)
    per_domain = Counter(q.domain for q in bank.questions)
    weight = {q.question_id: bank.domain_quotas[q.domain] / per_domain[q.domain] for q in bank.questions}

    def draw(candidates: list[Question], size: int) -> list[Question]:
        if size <= 0 or not candidates:
            return []
        w = np.array([weight[q.question_id] for q in candidates])
        picked = rng.choice(len(candidates), size=min(size, len(candidates)), replace=False, p=w / w.sum())
        return [candidates[i] for i in picked]

    pairs = []
    for card, count in zip(panel.cards, per_persona, strict=True):
        known = panel.answers.get(card.persona_id, {})
        from_survey = card.persona_id in panel.answers
        eligible = [q for q in bank.questions
                    if not (from_survey and q.is_closed and q.survey_item and q.survey_item not in known)]
        linked = [q for q in eligible if q.is_closed and q.survey_item]
        first = draw(linked, min(linked_per_persona, count)) if from_survey else []
        rest = draw([q for q in eligible if q not in first], count - len(first))
        chosen = sorted(first + rest, key=lambda q: q.question_id)
        pairs += [(card.to_dict(), q) for q in chosen]
    return pairs


def teacher_request(persona: dict, question: Question, stance: str | None) -> TeacherRequest:
    """The training prompt, plus (when known) the real respondent's answer on the linked GSS item."""
    messages = build_messages(persona, question.domain, question.text, question.question_type, question.options)
    if stance is not None:
        messages = with_known_stance(messages, stance)
    return TeacherRequest.make(messages, question.options)


def plan_references(pairs: list[tuple[dict, Question]], panel: PersonaPanel
                    ) -> tuple[dict[int, str], dict[int, TeacherRequest]]:
    """Which pairs take a real respondent's answer and which need the teacher (pair index -> answer/request)."""
    real, requests = {}, {}
    for index, (persona, question) in enumerate(pairs):
        known = panel.answers.get(persona["persona_id"], {})
        stance = known.get(question.survey_item) if question.survey_item else None
        if question.is_closed and stance is not None:
            real[index] = stance
        else:
            requests[index] = teacher_request(persona, question, stance)
    return real, requests


def make_record(persona: dict, question: Question, reference: str, source: str,
                include_persona: bool = True) -> dict:
    return {
        "id": f"{persona['persona_id']}--{question.question_id}",
        "persona_id": persona["persona_id"],
        "domain": question.domain,
        "question_id": question.question_id,
        "question": question.text,
        "question_type": question.question_type,
        "options": list(question.options),
        "persona": persona,
        "messages": build_messages(persona, question.domain, question.text, question.question_type,
                                   question.options, answer=reference, include_persona=include_persona),
        "reference": reference,
        "reference_source": source,
    }


def training_respondent_records(config, exclude: set[str]) -> list[dict]:
    """Closed records of `real_answers.training_respondents` real respondents of the survey (not in `exclude`): each
    respondent's real answer to every linked item they answered, through the one prompt. Respondents are drawn
    with the persona seed; with `option_order: mixed` each record's options are in the bank's order or reversed
    (drawn with the question seed)."""
    from .respondents import linked_by_id, survey_respondents

    wanted = config.real_answers.training_respondents
    if wanted == 0:
        return []
    survey = config.survey
    pool = [r for r in survey_respondents(survey, config.questions.bank_path) if r.persona_id not in exclude]
    if wanted > len(pool):
        raise ValueError(f"real_answers.training_respondents: {wanted} asked, {len(pool)} {survey.title} respondents "
                         "are outside the persona panel")
    chosen = sorted(np.random.default_rng([config.seeds.persona_sample, 1]).choice(len(pool), wanted, replace=False))
    questions = linked_by_id(config.bank)
    order_rng = np.random.default_rng([config.seeds.question_sample, 1])
    records = []
    for respondent in (pool[i] for i in chosen):
        for question_id in sorted(respondent.answers):
            question = questions[question_id]
            if config.real_answers.option_order == "mixed" and order_rng.random() < 0.5:
                question = dataclasses.replace(question, options=question.options[::-1])
            records.append(make_record(respondent.card, question, respondent.answers[question_id],
                                       "real_respondent"))
    return records


def training_respondent_ids(data_dir: Path) -> set[str]:
    """The training respondents of a built dataset (empty for datasets built without them)."""
    path = Path(data_dir) / TRAINING_RESPONDENTS_FILE
    return set(json.loads(path.read_text())) if path.exists() else set()


def _field(row: dict, name: str):
    """A record's field, or the same field of its `meta` (the released files keep ids and types there)."""
    if row.get(name) not in (None, "", [], {}):
        return row[name]
    meta = row.get("meta")
    return meta.get(name) if isinstance(meta, dict) else None


def import_records(path: Path, bank, drop_duplicates: bool = False, seen: dict | None = None,
                   stats: Counter | None = None, split: str = "") -> list[dict]:
    """Records of a Polypersona-format file (JSON list or JSONL, told apart by content), validated field by field.

    Ids, persona, question, type and domain come from the record or its `meta`; the reference from the record or
    the assistant turn of its messages. A closed question's options come from the record, else the question bank
    (same id or text), else the type's standard scale (`questions.STANDARD_SCALES`); `stats` counts which. A closed
    reference that is not one of the options (the released files answer in free text: "I'd rate myself a 3 ...")
    is kept as the reference, for the text metrics, and the option the study's parser finds in it, or none, is the
    record's `reference_option` (`reference_kind` says which; `stats` counts each per `split`). The
    messages are rebuilt by the one prompt. `seen` carries ids and (persona, question) pairs across the files of
    one import: a repeat is an error naming both places, or with `drop_duplicates` the first is kept and the rest
    counted. Every error names the file, the line and the record id."""
    from .personas import imported_card

    path = Path(path)
    try:
        raw = read_json_rows(path)
    except UserFileError as exc:
        raise RecordImportError(str(exc)) from None
    seen = {} if seen is None else seen
    stats = Counter() if stats is None else stats
    by_id, by_text = bank.by_id(), {q.text: q for q in bank.questions}
    records = []
    for number, row in raw:
        where = f"{path}: line {number}"
        if not isinstance(row, dict):
            raise RecordImportError(f"{where}: expected a JSON object, got {type(row).__name__}")
        rid = _field(row, "id")
        if rid in (None, ""):
            raise RecordImportError(f"{where}: field 'id' is missing or empty (also looked in 'meta')")
        rid = str(rid)
        where = f"{where} (record {rid})"
        messages = row.get("messages") or []
        last = messages[-1] if messages and isinstance(messages[-1], dict) else {}
        values = {name: _field(row, name) for name in ("domain", "question_type", "question", "persona")}
        values["reference"] = _field(row, "reference") or (last.get("content") if last.get("role") == "assistant"
                                                           else None)
        for name, value in values.items():
            if value in (None, "", [], {}):
                raise RecordImportError(f"{where}: field '{name}' is missing or empty"
                                        + (" (also looked in 'meta' and the assistant message)"
                                           if name == "reference" else " (also looked in 'meta')"))
        qtype, text = values["question_type"], str(values["question"]).strip()
        if qtype not in QUESTION_TYPES:
            raise RecordImportError(f"{where}: field 'question_type' must be one of {QUESTION_TYPES}, got {qtype!r}")
        if ("id", rid) in seen:
            raise RecordImportError(f"{where}: field 'id': {rid!r} already at {seen['id', rid]}")
        seen["id", rid] = f"{path.name}: line {number}"
        persona = dict(values["persona"]) if isinstance(values["persona"], dict) else values["persona"]
        if isinstance(persona, dict) and not persona.get("persona_id") and _field(row, "persona_id"):
            persona["persona_id"] = _field(row, "persona_id")
        try:
            card, unused = imported_card(persona, f"{where}: persona")
        except PersonaError as exc:
            raise RecordImportError(str(exc)) from None
        known = by_id.get(_field(row, "question_id")) or by_text.get(text)
        options, source = tuple(_field(row, "options") or ()), "record"
        if qtype in CLOSED_TYPES and not options:
            options, source = ((known.options, "question bank") if known and known.question_type == qtype
                               else (bank.standard_scale(qtype), "standard scale"))
        closed = None  # a closed record's (option its reference names, how it was found)
        if qtype in CLOSED_TYPES:
            reference = str(values["reference"])
            if reference in options:
                closed = (reference, "option")
            else:  # released files answer closed questions in free text: kept for the text metrics, parsed here
                option = parse_option(reference, list(options))
                closed = (option, "free text, option parsed" if option else "free text, no option")
            stats[f"{split + ': ' if split else ''}closed reference: {closed[1]}"] += 1
        question_id = str(_field(row, "question_id") or (known.question_id if known else "")
                          or "q-" + sha256_json(text)[:10])
        pair = ("pair", card.persona_id, text)
        if pair in seen:
            if drop_duplicates:
                stats["dropped_duplicate_pairs"] += 1
                continue
            raise RecordImportError(f"{where}: persona {card.persona_id} is asked question {question_id} again (first "
                                    f"at {seen[pair]}); set references.drop_duplicates: true to keep the first")
        seen[pair] = f"{path.name}: line {number} (record {rid})"
        if options:
            stats[f"options from the {source}"] += 1
        stats.update(f"persona field not used: {name}" for name in unused)
        question = Question(question_id, str(values["domain"]), qtype, text, options)
        record = make_record(card.to_dict(), question, str(values["reference"]), "imported")
        record["id"] = rid
        if closed is not None:
            record["reference_option"], record["reference_kind"] = closed
        records.append(record)
    return records


def split_personas(persona_ids: list[str], fractions: tuple[float, float, float], seed: int) -> dict[str, str]:
    """persona_id -> split. Personas are shuffled with `seed` and cut by the fractions."""
    ids = sorted(set(persona_ids))
    order = [ids[i] for i in np.random.default_rng(seed).permutation(len(ids))]
    n_val = int(round(fractions[1] * len(ids)))
    n_test = int(round(fractions[2] * len(ids)))
    if len(ids) >= 3:  # tiny panels still get a non-empty val and test split when asked for one
        n_val, n_test = max(n_val, fractions[1] > 0), max(n_test, fractions[2] > 0)
    n_train = len(ids) - n_val - n_test
    bounds = {"train": order[:n_train], "val": order[n_train:n_train + n_val], "test": order[n_train + n_val:]}
    return {pid: split for split, pids in bounds.items() for pid in pids}


def split_records(records: list[dict], fractions: tuple[float, float, float], seed: int,
                  persona_disjoint: bool = True) -> dict[str, list[dict]]:
    if persona_disjoint:
        assignment = split_personas([r["persona_id"] for r in records], fractions, seed)
        key_of = lambda r: assignment[r["persona_id"]]  # noqa: E731
    else:
        assignment = split_personas([r["id"] for r in records], fractions, seed)
        key_of = lambda r: assignment[r["id"]]  # noqa: E731
    splits = {name: [] for name in SPLITS}
    for record in sorted(records, key=lambda r: r["id"]):
        splits[key_of(record)].append(record)
    return splits


def check_leakage(splits: dict[str, list[dict]], persona_disjoint: bool = True) -> None:
    """Raise LeakageError if a persona is in two splits (when disjoint) or a (persona, question) pair repeats."""
    pairs = Counter((r["persona_id"], r["question"]) for rows in splits.values() for r in rows)
    repeated = [pair for pair, count in pairs.items() if count > 1]
    if repeated:
        raise LeakageError(f"(persona, question) pair occurs {pairs[repeated[0]]} times: {repeated[0]}")
    ids = Counter(r["id"] for rows in splits.values() for r in rows)
    if max(ids.values(), default=1) > 1:
        raise LeakageError(f"record id repeated: {ids.most_common(1)[0][0]}")
    if persona_disjoint:
        owners: dict[str, set[str]] = {}
        for name, rows in splits.items():
            for r in rows:
                owners.setdefault(r["persona_id"], set()).add(name)
        shared = sorted(pid for pid, names in owners.items() if len(names) > 1)
        if shared:
            raise LeakageError(f"persona {shared[0]} is in splits {sorted(owners[shared[0]])}")


def check_record(record: dict) -> None:
    """The record contract; raises ValueError naming the record and field."""
    missing = [f for f in RECORD_FIELDS if f not in record]
    if missing:
        raise ValueError(f"record {record.get('id')}: missing field '{missing[0]}'")
    roles = [m["role"] for m in record["messages"]]
    if roles != ["system", "user", "assistant"] or record["messages"][-1]["content"] != record["reference"]:
        raise ValueError(f"record {record['id']}: messages must be [system, user, assistant=reference]")
    if record["reference_source"] not in REFERENCE_SOURCES:
        raise ValueError(f"record {record['id']}: unknown reference_source {record['reference_source']!r}")
    if record["options"] and record["reference"] not in record["options"] and (
            "reference_option" not in record or record["reference_option"] not in (None, *record["options"])):
        raise ValueError(f"record {record['id']}: reference is not one of its options (and no reference_option)")


def run_view(records: list[dict], split: str, config, training_respondents: set[str] = frozenset()
             ) -> list[dict]:
    """The records a run sees. An ablation run (`config.run` set) keeps the fixed persona subset of
    `ablation_runs`, plus `ablation.training_respondents` of the training respondents (`real_answers`; none unless
    asked: the ablations vary the paper's recipe on persona cards); then, with a held-out domain, training and
    validation lose that domain and the test keeps only it. The main run sees whole splits."""
    if config.run:
        asked, pool = config.ablation.training_respondents, sorted(training_respondents)
        if asked > len(pool):
            raise ValueError(f"ablation.training_respondents: {asked} asked, the dataset has {len(pool)} training "
                             "respondents (real_answers.training_respondents)")
        # The first `asked` of one seeded order: a larger size keeps the smaller sizes' respondents (nested curve).
        chosen = {pool[i] for i in np.random.default_rng([config.seeds.split, 4]).permutation(len(pool))[:asked]}
        respondent_records = [r for r in records if r["persona_id"] in chosen]
        records = [r for r in records if r["persona_id"] not in training_respondents]
        wanted = getattr(config.ablation_runs, f"{split}_personas")
        personas = sorted({r["persona_id"] for r in records})
        if wanted is not None and wanted < len(personas):
            # Seeded by the split seed and the split: the same subset for every run of the profile.
            rng = np.random.default_rng([config.seeds.split, SPLITS.index(split)])
            keep = set(rng.choice(personas, wanted, replace=False).tolist())
            records = [r for r in records if r["persona_id"] in keep]
        if respondent_records:
            records = sorted(records + respondent_records, key=lambda r: r["id"])
    heldout = config.ablation.heldout_domain
    if heldout is None:
        return records
    if split == "test":
        return [r for r in records if r["domain"] == heldout]
    return [r for r in records if r["domain"] != heldout]


def load_split(config, split: str) -> list[dict]:
    """A split of the profile's dataset as the configuration's run sees it."""
    folder = paths.data_dir(config.profile)
    return run_view(read_jsonl(folder / f"{split}.jsonl"), split, config, training_respondent_ids(folder))


@dataclass
class BuildResult:
    splits: dict[str, list[dict]]
    counts: dict
    data_dir: Path
    files: dict[str, Path]


def write_dataset(splits: dict[str, list[dict]], out_dir: Path) -> dict[str, Path]:
    """`{train,val,test}.jsonl` (canonical JSON, sorted by id: same records, same bytes) and a DatasetDict."""
    files = {}
    for name in SPLITS:
        files[name] = out_dir / f"{name}.jsonl"
        write_jsonl(files[name], splits[name])
    _save_dataset_dict(splits, out_dir / "hf_dataset")
    return files


def _save_dataset_dict(splits: dict[str, list[dict]], target: Path) -> None:
    import shutil

    from datasets import Dataset, DatasetDict

    # Nested columns of varying shape (persona, options) are stored as JSON text: Arrow needs one schema.
    def flat(rows):
        return [{**r, "persona": json.dumps(r["persona"], sort_keys=True), "options": json.dumps(r["options"])}
                for r in rows]

    tmp = target.with_name(target.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    DatasetDict({name: Dataset.from_list(flat(rows)) for name, rows in splits.items() if rows}).save_to_disk(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)


def count_table(splits: dict[str, list[dict]]):
    """Long table: split x domain x question_type x reference_source -> records."""
    import pandas as pd

    rows = [{"split": name, "domain": r["domain"], "question_type": r["question_type"],
             "reference_source": r["reference_source"]} for name, recs in splits.items() for r in recs]
    table = pd.DataFrame(rows, columns=["split", "domain", "question_type", "reference_source"])
    return table.value_counts().rename("records").reset_index().sort_values(
        ["split", "domain", "question_type", "reference_source"], ignore_index=True)


def import_files(config) -> dict[str, Path]:
    """The files `references.import_path` names, by split (`all` for one file the project splits), resolved from
    the project root; a missing file is a RecordImportError naming the key and where it looked."""
    try:
        return {split: resolve_user_path(value, "references.import_path" + ("" if split == "all" else f".{split}"))
                for split, value in config.references.import_files().items()}
    except UserFileError as exc:
        raise RecordImportError(str(exc)) from None


def build_dataset(config, progress: bool = True, teacher=None) -> BuildResult:
    """Notebook 01 end to end: personas, questions, references, records, splits, card, figure, provenance."""
    from .dataset_card import write_dataset_card
    from .personas import load_panel
    from .teacher import make_teacher, run_teacher

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
