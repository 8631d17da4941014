"""The new-items folds through the Make target a user runs (`make new-items`), on the smoke profile, in a workspace
of their own (`conftest.workspace`): the target builds the smoke dataset first, then trains and scores each fold;
this file runs beside tests/test_notebooks.py (the main study and its learning curve)."""
import re

import pandas as pd
import pytest

from polypersona_utils import paths

from conftest import executed_without_error, make


@pytest.mark.slow
def test_make_new_items_runs_each_fold_then_notebook_08(workspace):
    """The smoke profile's two folds trained on the other items and scored on their held-out items by notebooks 02
    and 06, then put together by notebook 08; every panel pair is held out by exactly one fold."""
    from polypersona_utils.config import load_config
    from polypersona_utils.runs.new_items import fold_items, new_items_runs

    config = load_config("smoke")
    done = make("new-items", "PROFILE=smoke", capture=True)
    assert all(f"new-items fold {name}" in done.stdout for name in new_items_runs(config))
    executed_without_error("08_new_items.ipynb")
    stored = pd.read_csv(paths.results_dir("smoke") / "new_items_distributions.csv")
    assert not stored.duplicated(["variant", "persona_id", "question_id"]).any()  # each pair held out once
    for _, variant in stored.groupby("variant"):  # only the held-out items, never a whole-panel row
        assert set(variant.question_id) == {q for fold in fold_items(config) for q in fold}
    table = pd.read_csv(paths.tables_dir("smoke") / "panel_new_items.csv")
    assert {"smollm2-135m-lora", "uniform", "pooled-marginal", "pooled-logistic", "baseline-logistic"} <= set(
        table.variant)
    assert (table.log_loss_lo <= table.log_loss).all() and (paths.figures_dir("smoke") / "panel_new_items.png").exists()
    assert "## New questions" in (paths.results_dir("smoke") / "README.md").read_text()
    assert "new-items fold" not in make("new-items", "PROFILE=smoke", capture=True).stdout
    # the main run has no answers in this workspace: its new-items tables are checked all the same
    checked = make("check-results", "PROFILE=smoke", capture=True).stdout
    assert "results/smoke: no stored answers" not in checked
    assert re.search(r"^  panel_new_items: matches", checked, re.M), checked
