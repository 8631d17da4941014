"""Records a user brings (`references.mode: import`): read, checked against the record contract and the question
bank, each error naming the file, line and field."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

from ..provenance import sha256_json
from ..user_files import UserFileError, read_json_rows, resolve_user_path
from .parsing import parse_option
from .personas import PersonaError, imported_card
from .questions import CLOSED_TYPES, QUESTION_TYPES, Question
from .records import make_record
from .splits import SPLITS


class RecordImportError(ValueError):
    """A malformed Polypersona-format file; the message names the record and the field."""


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
    one import. An id is unique across the import (the splits and `make score` find records by id). A repeated
    (persona, question) pair:
    - in a file the project splits (`split` "all" or none): an error naming both places, or with
      `drop_duplicates` the first is kept and the rest counted;
    - in a given split (`split` train, val or test: the released files' own): kept where the file put it, within
      the split or across splits, and counted in `stats`; the record's `given_split` says where it was given, and
      `splits.check_leakage` lets such records share personas and pairs (the dataset card counts them,
      `splits.given_split_overlaps`). `drop_duplicates` is refused for given splits: dropping would remove
      records the release evaluates (a released prediction of a dropped test record could not be scored).
    Every error names the file, the line, the record id and the field, and says what to do."""
    path = Path(path)
    given = split in SPLITS
    if given and drop_duplicates:
        raise RecordImportError(
            f"references.drop_duplicates: true, but {path} is given as the {split} split "
            f"(references.import_path.{split}): given splits are kept as released, repeated (persona, question) "
            "records included (the dataset card counts them), so that every released record can be trained on or "
            "scored; remove references.drop_duplicates, or give one file (references.import_path: <file>) for the "
            "project to split and de-duplicate")
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
            raise RecordImportError(f"{where}: field 'id': {rid!r} is already the id of the record at "
                                    f"{seen['id', rid]}; ids must be unique across the imported files (the splits "
                                    "and make score find records by id): give one of them another id, or remove "
                                    "it if it is the same record twice")
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
            first, first_split = seen[pair]
            if given:  # the release's own placement: kept, counted (and in the dataset card)
                stats[f"{split}: repeated (persona, question) record kept"
                      + ("" if first_split == split else f", first in {first_split}")] += 1
            elif drop_duplicates:
                stats["dropped_duplicate_pairs"] += 1
                continue
            else:
                raise RecordImportError(
                    f"{where}: field 'question': persona {card.persona_id} is asked question {question_id} again "
                    f"(first at {first}); set references.drop_duplicates: true to keep the first, or give the "
                    "files as splits (references.import_path: {train: ..., val: ..., test: ...}) to keep both "
                    "where they are")
        else:
            seen[pair] = (f"{path.name}: line {number} (record {rid})", split)
        if options:
            stats[f"options from the {source}"] += 1
        stats.update(f"persona field not used: {name}" for name in unused)
        question = Question(question_id, str(values["domain"]), qtype, text, options)
        record = make_record(card.to_dict(), question, str(values["reference"]), "imported")
        record["id"] = rid
        if given:
            record["given_split"] = split
        if closed is not None:
            record["reference_option"], record["reference_kind"] = closed
        records.append(record)
    return records


def import_files(config) -> dict[str, Path]:
    """The files `references.import_path` names, by split (`all` for one file the project splits), resolved from
    the project root; a missing file is a RecordImportError naming the key and where it looked."""
    try:
        return {split: resolve_user_path(value, "references.import_path" + ("" if split == "all" else f".{split}"))
                for split, value in config.references.import_files().items()}
    except UserFileError as exc:
        raise RecordImportError(str(exc)) from None
