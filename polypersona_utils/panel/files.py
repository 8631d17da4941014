"""Panel-format files a user brings or fills in: one row per (respondent, item) with `persona_id`, `question_id`,
`options` and `probabilities` (in a CSV joined by '|', in JSON lists), as `results/<profile>/panel_distributions.csv`
holds them. Read through `user_files` (CSV, JSON or JSONL); every bad row is an error naming the file, the line and
the field, and nothing is read past it."""
from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from ..user_files import UserFileError, read_rows

REQUIRED = ("persona_id", "question_id", "options", "probabilities")


def listed(value, where: str, field: str) -> list:
    """A JSON list as it is, a CSV cell split at '|'."""
    if isinstance(value, list):
        return value
    if isinstance(value, str):
        return value.split("|")
    raise UserFileError(f"{where}: field '{field}': expected a list or '|'-joined text, got {value!r}")


def read_panel_file(path: Path, tolerance: float = 1e-3) -> pd.DataFrame:
    """The rows of a panel-format file, with `options` as tuples (distinct, non-empty), `probabilities` as float
    lists (finite, non-negative, one per option, summing to 1 within `tolerance` or within the rounding of K
    probabilities written to 6 decimals, K x 5e-7, whichever is larger; then renormalised) and the file's `line`;
    other columns as given. A (persona_id, question_id) pair given twice names both lines."""
    path = Path(path)
    out, seen = [], {}
    for line, row in read_rows(path, REQUIRED):
        where = f"{path}: line {line}"
        if not isinstance(row, dict):
            raise UserFileError(f"{where}: expected an object with {', '.join(REQUIRED)}")
        missing = [f for f in REQUIRED if row.get(f) in (None, "")]
        if missing:
            raise UserFileError(f"{where}: field '{missing[0]}' is missing")
        options = tuple(str(o) for o in listed(row["options"], where, "options"))
        if len(set(options)) != len(options) or not all(o.strip() for o in options):
            raise UserFileError(f"{where}: field 'options': {list(options)} must be distinct, non-empty texts")
        try:
            probabilities = [float(p) for p in listed(row["probabilities"], where, "probabilities")]
        except (TypeError, ValueError):
            raise UserFileError(f"{where}: field 'probabilities': not numbers: {row['probabilities']!r}") from None
        if len(probabilities) != len(options) or not all(math.isfinite(p) and p >= 0 for p in probabilities) \
                or abs(sum(probabilities) - 1) > max(tolerance, len(options) * 5e-7):
            raise UserFileError(f"{where}: field 'probabilities': {row['probabilities']!r} must be one finite, "
                                f"non-negative number per option ({len(options)}) summing to 1 (within {tolerance:g})")
        pair = (str(row["persona_id"]), str(row["question_id"]))
        if pair in seen:
            raise UserFileError(f"{where}: fields 'persona_id', 'question_id': {pair} is also on line {seen[pair]}")
        seen[pair] = line
        total = sum(probabilities)
        out.append({**row, "persona_id": pair[0], "question_id": pair[1], "options": options,
                    "probabilities": [p / total for p in probabilities], "line": line})
    if not out:
        raise UserFileError(f"{path}: no rows")
    return pd.DataFrame(out)
