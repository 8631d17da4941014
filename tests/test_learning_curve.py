"""The learning curve: its runs, what they train on, and the table, figure and README section built from their
panel tables."""
import json

import pandas as pd
import pytest

from polypersona_utils import paths
from polypersona_utils.config import ConfigError, load_config
from polypersona_utils.runs.learning_curve import collect, learning_curve_runs, run_learning_curve

VARIANTS = ("smollm2-135m-lora", "baseline-population")


def fake_run_tables(config, size: int, log_loss: dict[str, float]) -> None:
    """The panel tables notebook 06 writes for run `respondents-<size>`, with known numbers."""
    tables = paths.RunPaths(config.profile, f"respondents-{size}").tables
    tables.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{"variant": v, "respondents": 60, "log_loss": log_loss[v], "log_loss_lo": log_loss[v] - 0.05,
                   "log_loss_hi": log_loss[v] + 0.05, "accuracy": 0.5, "accuracy_lo": 0.4, "accuracy_hi": 0.6}
                  for v in VARIANTS]).to_csv(tables / "panel_individual.csv", index=False)
    pd.DataFrame([{"variant": v, "cells": 30, "correlation": 0.1 * size, "correlation_lo": 0.0,
                   "correlation_hi": 0.2 * size, "slope": 0.1, "slope_lo": 0.0, "slope_hi": 0.2}
                  for v in VARIANTS]).to_csv(tables / "panel_effects.csv", index=False)


def test_runs_and_the_size_check():
    config = load_config("smoke", overrides={"real_answers.training_respondents": 4,
                                             "real_answers.learning_curve": [0, 2, 4]})
    assert learning_curve_runs(config) == {"respondents-0": {"ablation.training_respondents": 0},
                                           "respondents-2": {"ablation.training_respondents": 2},
                                           "respondents-4": {"ablation.training_respondents": 4}}
    with pytest.raises(ConfigError, match="learning_curve: distinct sizes between 0 and training_respondents"):
        load_config("smoke", overrides={"real_answers.learning_curve": [0, 3]})  # smoke has 2 respondents
    with pytest.raises(ConfigError, match="learning_curve"):
        load_config("smoke", overrides={"real_answers.learning_curve": [2, 2]})


def test_learning_curve_runs_are_known_to_make_ablation_overrides():
    from polypersona_utils.runs.ablations import overrides_for

    config = load_config("smoke", overrides={"real_answers.learning_curve": [2]})
    assert overrides_for(config, "respondents-2", {}) == {"ablation.training_respondents": 2}


def test_collect_writes_table_figure_and_section(tmp_roots):
    config = load_config("smoke", overrides={"real_answers.training_respondents": 4, "real_answers.learning_curve": [0, 4]})
    with pytest.raises(FileNotFoundError, match="respondents-0.*make learning-curve PROFILE=smoke"):
        collect(config)
    fake_run_tables(config, 0, {"smollm2-135m-lora": 1.30, "baseline-population": 0.90})
    fake_run_tables(config, 4, {"smollm2-135m-lora": 0.95, "baseline-population": 0.89})
    curve = run_learning_curve(config)
    lora = curve[(curve.variant == "smollm2-135m-lora") & (curve.measure == "log_loss")]
    assert lora.set_index("training_respondents").value.to_dict() == {0: 1.30, 4: 0.95}
    assert set(curve.measure) == {"log_loss", "accuracy", "subgroup_effect_correlation", "subgroup_effect_slope"}
    effect = curve[(curve.measure == "subgroup_effect_correlation") & (curve.training_respondents == 4)]
    assert effect.high.tolist() == [0.8, 0.8]  # intervals carried from the run tables
    where = config.paths()
    assert pd.read_csv(where.tables / "learning_curve.csv").shape == (16, 7)  # 2 runs x 2 variants x 4 measures
    assert (where.figures / "learning_curve.png").stat().st_size > 10_000
    readme = (where.results / "README.md").read_text()
    assert "## Learning curve: real respondents in training" in readme and "0.950" in readme
    provenance = json.loads((where.results / "provenance" / "07_learning_curve.json").read_text())
    assert provenance["runs"] == ["respondents-0", "respondents-4"]
