"""What a survey statistician would answer without a language model, scored beside the models.

`baseline-train-retrieval` answers a closed question with the training respondents' most common answer to it, and
an open question with the training reference of the most similar training persona (most card fields in common) for
the same question. `baseline-demographic-cell` answers closed questions with the most common training answer in the
respondent's demographic cell. A model that cannot beat them has learned nothing about people.
"""
from __future__ import annotations

from collections import Counter

from ..dataset.demographics import SUBGROUPS, demographic_frame
from ..dataset.surveys import CARD_TEXT_FIELDS

BASELINE = "baseline-train-retrieval"
CELL_BASELINE = "baseline-demographic-cell"


def retrieval_baseline(train: list[dict], test: list[dict]) -> list[dict]:
    """Predictions of the non-LLM reference (see the module docstring); deterministic, ties by record id."""
    by_question: dict[str, list[dict]] = {}
    for record in sorted(train, key=lambda r: r["id"]):
        by_question.setdefault(record["question_id"], []).append(record)
    rows = []
    for record in test:
        pool = by_question.get(record["question_id"], [])
        if record["options"]:
            counts = Counter(r["reference"] for r in pool)
            answer = max(record["options"], key=lambda o: (counts[o], -record["options"].index(o))) if pool else ""
            parsed = answer or None
        else:
            overlap = lambda r: sum(r["persona"][k] == record["persona"][k] for k in CARD_TEXT_FIELDS)  # noqa: E731
            answer = max(pool, key=overlap)["reference"] if pool else ""
            parsed = None
        rows.append({"id": record["id"], "prediction": answer, "parsed_option": parsed,
                     "unparseable": bool(record["options"]) and parsed is None, "variant": BASELINE})
    return rows


def demographic_cell_baseline(train: list[dict], test: list[dict]) -> list[dict]:
    """Closed questions only: the most common training answer among respondents in the same demographic cell
    (age band, sex, education, party), falling back to all training respondents when the cell is empty."""
    cell_of = lambda records: [tuple(row) for row in  # noqa: E731
                               demographic_frame([r["persona"] for r in records])[list(SUBGROUPS)].to_numpy()]
    train_closed = [r for r in train if r["options"]]
    train_cells = cell_of(train_closed) if train_closed else []
    test_closed = [r for r in test if r["options"]]
    rows = []
    for record, cell in zip(test_closed, cell_of(test_closed) if test_closed else []):
        same_question = [(r, c) for r, c in zip(train_closed, train_cells) if r["question_id"] == record["question_id"]]
        pool = [r for r, c in same_question if c == cell] or [r for r, _ in same_question]
        counts = Counter(r["reference"] for r in pool)
        answer = max(record["options"], key=lambda o: (counts[o], -record["options"].index(o))) if pool else ""
        rows.append({"id": record["id"], "prediction": answer, "parsed_option": answer or None,
                     "unparseable": not answer, "variant": CELL_BASELINE})
    return rows
