"""`make check-results`: a recomputed table against the stored one, within tolerances declared once here by kind
of quantity, reporting each table's largest difference and, beyond its tolerance, the row and column.

Both sides are compared as written (`write_table`'s CSV, four decimals), so a stored table is checked against
exactly what this machine would store. Why each tolerance is what it is: docs/reliability.md, "Checking results".
"""
from __future__ import annotations

import math
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .tables import write_table

# Tolerances, by kind of quantity (absolute, in the units of the column).
EXACT = 0.0  # labels, counts and every column that is not a float: the same on every machine
LAST_DIGIT = 1e-4  # a float estimate: written with four decimals, and a processor that sums in another order can
#                    move a value across a rounding boundary, one unit of the last digit
ITERATIVE_FIT = 1e-4  # an estimate from an iterative fit (the cross-fitted logistic stackers, `panel.stacking`):
#                       solved to the optimum by Newton steps, a relative perturbation of 1e-12 in the inputs moves
#                       them by 1e-13, so the last digit is what remains (lbfgs at sklearn's default tolerance moved
#                       them by up to 7e-4, which is what machines disagreed by)
ITERATIVE_FIT_TABLES = ("panel_stacking", "panel_models")  # the tables holding such estimates
SLACK = 1e-9  # a difference read back from two decimal strings is not exactly a multiple of 1e-4


def tolerance(table: str, column: str, values: pd.Series) -> float:
    """The tolerance of one column of one table (see the constants above)."""
    if not pd.api.types.is_float_dtype(values):
        return EXACT
    return ITERATIVE_FIT if table in ITERATIVE_FIT_TABLES else LAST_DIGIT


@dataclass
class TableCheck:
    """One table's comparison: the largest difference over its float columns, where it is, and every cell beyond
    its tolerance (each naming row and column). `problems` empty: the table is reproduced."""
    table: str
    largest: float = 0.0
    largest_at: str = ""
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        state = "differs" if self.problems else "matches"
        at = f" ({self.largest_at})" if self.largest else ""
        return f"{self.table}: {state}, largest difference {self.largest:.1e}{at}"


def row_label(frame: pd.DataFrame, index: int) -> str:
    """`row 3 (variant=model, reference=baseline-population)`: the row's number and its label columns."""
    labels = [f"{c}={frame.at[index, c]}" for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
    return f"row {index + 1}" + (f" ({', '.join(labels)})" if labels else "")


def compare_table(name: str, stored: pd.DataFrame, recomputed: pd.DataFrame) -> TableCheck:
    """`recomputed` against `stored`, both as read back from their CSVs."""
    check = TableCheck(name)
    if list(stored.columns) != list(recomputed.columns):
        check.problems.append(f"{name}: columns differ: stored {list(stored.columns)}, recomputed "
                              f"{list(recomputed.columns)}")
        return check
    if len(stored) != len(recomputed):
        check.problems.append(f"{name}: {len(stored)} rows stored, {len(recomputed)} recomputed")
        return check
    for column in stored.columns:
        allowed = max(tolerance(name, column, stored[column]), tolerance(name, column, recomputed[column]))

        def where(index: int) -> str:  # written only where something is reported
            return f"{row_label(stored, index)}, column {column}"

        for index, (a, b) in enumerate(zip(stored[column], recomputed[column])):
            if allowed == EXACT and not (pd.isna(a) and pd.isna(b)) and not (a == b or str(a) == str(b)):
                check.problems.append(f"{name} {where(index)}: stored {a!r}, recomputed {b!r} (must be equal)")
                continue
            if allowed == EXACT:
                continue
            a, b = float(a), float(b)
            if math.isnan(a) or math.isnan(b):
                if math.isnan(a) != math.isnan(b):
                    check.problems.append(f"{name} {where(index)}: stored {a}, recomputed {b}")
                continue
            difference = abs(a - b)
            if difference > check.largest:
                check.largest, check.largest_at = difference, where(index)
            if difference > allowed + SLACK:
                check.problems.append(f"{name} {where(index)}: stored {a:.4f}, recomputed {b:.4f}, difference "
                                      f"{difference:.1e} beyond the tolerance {allowed:.0e}")
    return check


def read_back(table: pd.DataFrame) -> pd.DataFrame:
    """`table` as `write_table` writes it and `pd.read_csv` reads it back."""
    with tempfile.TemporaryDirectory() as tmp:
        write_table(table, Path(tmp) / "table")
        return read_stored(Path(tmp) / "table.csv")


def read_stored(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, float_precision="round_trip")


def check_tables(tables: dict[str, pd.DataFrame], folder: Path) -> list[TableCheck]:
    """Each recomputed table against the one stored in `folder` (a missing stored table is a problem)."""
    checks = []
    for name, table in tables.items():
        stored = Path(folder) / f"{name}.csv"
        if not stored.exists():
            checks.append(TableCheck(name, problems=[f"{name}: no stored table {stored}"]))
            continue
        checks.append(compare_table(name, read_stored(stored), read_back(table)))
    return checks
