"""`make check-results`' comparison (`reporting.checks`): within the tolerance a table passes and its largest
difference is reported; beyond it, or a label or count that differs at all, it fails naming table, row and column."""
import pandas as pd
import pytest

from polypersona_utils.reporting.checks import (EXACT, ITERATIVE_FIT, LAST_DIGIT, check_tables, compare_table,
                                                read_back, tolerance)
from polypersona_utils.reporting.tables import write_table

STORED = pd.DataFrame({"variant": ["model", "baseline-population"], "respondents": [300, 300],
                       "log_loss": [0.8975, 0.8735], "ci_method": ["BCa", "constant"]})


def changed(column, row, value):
    table = STORED.copy()
    table.loc[row, column] = value
    return table


def test_tolerances_by_kind_of_quantity():
    assert tolerance("panel_individual", "variant", STORED.variant) == EXACT
    assert tolerance("panel_individual", "respondents", STORED.respondents) == EXACT  # a count
    assert tolerance("panel_individual", "log_loss", STORED.log_loss) == LAST_DIGIT
    assert tolerance("panel_stacking", "gain", STORED.log_loss) == ITERATIVE_FIT


def test_an_identical_table_passes_with_no_difference():
    check = compare_table("panel_individual", STORED, read_back(STORED))
    assert check.problems == [] and check.largest == 0.0
    assert check.line() == "panel_individual: matches, largest difference 0.0e+00"


def test_a_rounding_flip_in_the_last_digit_passes_and_is_reported_where_it_is():
    # 0.89745000001 is written 0.8975, 0.89744999 as 0.8974: one unit of the fourth decimal
    check = compare_table("panel_individual", STORED, read_back(changed("log_loss", 0, 0.89744999)))
    assert check.problems == []
    assert check.largest == pytest.approx(1e-4)
    assert check.largest_at == "row 1 (variant=model, ci_method=BCa), column log_loss"


def test_a_value_beyond_its_tolerance_fails_naming_table_row_and_column():
    check = compare_table("panel_individual", STORED, read_back(changed("log_loss", 1, 0.8738)))
    assert check.problems == ["panel_individual row 2 (variant=baseline-population, ci_method=constant), column "
                              "log_loss: stored 0.8735, recomputed 0.8738, difference 3.0e-04 beyond the tolerance "
                              "1e-04"]
    assert check.line().startswith("panel_individual: differs, largest difference 3.0e-04")


@pytest.mark.parametrize("column, value", [("respondents", 299), ("variant", "model-edited"),
                                           ("ci_method", "normal")])
def test_a_count_or_a_label_must_be_equal(column, value):
    check = compare_table("panel_individual", STORED, read_back(changed(column, 0, value)))
    assert len(check.problems) == 1 and f"column {column}" in check.problems[0]
    assert "must be equal" in check.problems[0]


def test_a_table_of_another_shape_or_missing_fails(tmp_path):
    assert "columns differ" in compare_table("t", STORED, STORED.drop(columns="ci_method")).problems[0]
    assert "2 rows stored, 1 recomputed" in compare_table("t", STORED, STORED.iloc[:1]).problems[0]
    write_table(STORED, tmp_path / "panel_individual")
    checks = check_tables({"panel_individual": STORED, "panel_effects": STORED}, tmp_path)
    assert [c.problems for c in checks][0] == []
    assert checks[1].problems == [f"panel_effects: no stored table {tmp_path / 'panel_effects.csv'}"]


def test_a_missing_value_must_stay_missing():
    missing = changed("log_loss", 0, float("nan"))
    assert compare_table("t", read_back(missing), read_back(missing)).problems == []
    assert "stored 0.8975, recomputed nan" in compare_table("t", STORED, read_back(missing)).problems[0]
