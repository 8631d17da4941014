"""Which levers helped: the curve's points that change one setting of an earlier point, and their paired
differences, computed by hand, written by notebook 07 and checked by `make check-results`."""
import math

import numpy as np
import pandas as pd
import pytest

from polypersona_utils import paths
from polypersona_utils.config import load_config
from polypersona_utils.panel.measures import with_answer_columns
from polypersona_utils.panel.report import distributions_csv
from polypersona_utils.runs.learning_curve import check_learning_curve, learning_curve_runs, run_learning_curve
from polypersona_utils.runs.levers import lever_pairs, lever_sentence, lever_table
from test_learning_curve import VARIANTS, fake_dataset, fake_point

OPTIONS = ["Too little", "About right", "Too much"]
VARIABLES = ("age_band", "gender", "education", "party", "ideology", "race")


def panel(variant: str, confidence, people: int = 40) -> pd.DataFrame:
    """Respondents alternate Democrat ("Too little") and Republican ("Too much"); `confidence(i)` is the probability
    the variant gives respondent i's real answer, the rest split evenly."""
    rows = []
    for i in range(people):
        party, real = ("Democrat", 0) if i % 2 == 0 else ("Republican", 2)
        c = confidence(i)
        p = [(1 - c) / 2] * 3
        p[real] = c
        rows += [{"variant": variant, "persona_id": f"p{i:03d}", "question_id": q, "options": OPTIONS,
                  "probabilities": p, "real_option": OPTIONS[real], "sampled_option": OPTIONS[real],
                  "age_band": "30-44", "gender": "woman" if i % 4 < 2 else "man", "education": "x", "party": party,
                  "ideology": "moderate", "race": "white"} for q in ("edu_01", "env_01")]
    return pd.DataFrame(rows)


def test_a_lever_is_a_point_that_changes_one_setting_of_an_earlier_point_at_its_size():
    config = load_config("default")
    runs = learning_curve_runs(config)
    pairs = lever_pairs(list(zip(config.learning_curve, runs)),
                        {"model": "smollm2-135m", "learning_rate": config.training.learning_rate})
    assert pairs == [
        ("curve-smollm2-135m-sft-512-fp32", "curve-smollm2-135m-sft-512-top8-fp32", "adapted layers: top 8 to all"),
        ("curve-smollm2-135m-sft-512-top8-fp32-lr0.001", "curve-smollm2-135m-sft-512-top8-fp32",
         "learning rate: 0.0002 to 0.001"),
        ("curve-smollm2-135m-sft-all-top8-fp32-lr0.001", "curve-smollm2-135m-sft-all-top8-fp32",
         "learning rate: 0.0002 to 0.001"),
        ("curve-smollm2-135m-sft-512-top8-fp32-e3", "curve-smollm2-135m-sft-512-top8-fp32", "epochs: 1 to 3"),
        ("curve-smollm2-135m-options-512-top8-fp32-lr0.001", "curve-smollm2-135m-sft-512-top8-fp32-lr0.001",
         "objective: sft to option_likelihood"),
        ("curve-gemma3-270m-sft-512-top8-fp32-lr0.001", "curve-smollm2-135m-sft-512-top8-fp32-lr0.001",
         "model: smollm2-135m to gemma3-270m"),
        ("curve-smollm2-135m-options-all-top8-fp32-lr0.001", "curve-smollm2-135m-sft-all-top8-fp32-lr0.001",
         "objective: sft to option_likelihood"),
        ("curve-gemma3-270m-sft-all-top8-fp32-lr0.001", "curve-smollm2-135m-sft-all-top8-fp32-lr0.001",
         "model: smollm2-135m to gemma3-270m")]  # 128 and 1,024 have no partner; two changes at once are no lever
    named = load_config("smoke", overrides={"learning_curve": [{"respondents": 4, "model": "smollm2-135m"},
                                                               {"respondents": 4, "learning_rate": 1e-3}]})
    assert lever_pairs(list(zip(named.learning_curve, learning_curve_runs(named))),
                       {"model": "smollm2-135m", "learning_rate": 2e-4}) == [
        ("curve-smollm2-135m-sft-4-lr0.001", "curve-smollm2-135m-sft-4", "learning rate: 0.0002 to 0.001")]


def test_a_lever_is_the_difference_of_the_two_fine_tuned_panels_on_the_same_draws_as_computed_by_hand():
    confidence = [0.6 + 0.075 * (i % 5) for i in range(40)]  # the lever's panel knows the parties, unevenly
    distributions = {"lever": panel("m-lora", lambda i: confidence[i]),
                     "before": pd.concat([panel("m-lora", lambda i: 0.45), panel("m-zeroshot", lambda i: 0.2)])}
    population = panel("population", lambda i: 1.0)
    table = lever_table([("lever", "before", "epochs: 1 to 3")], {"lever": 40}, distributions, population, 200, 1,
                        5, VARIABLES)
    rows = table.set_index("measure")
    assert list(rows.index) == ["log_loss", "subgroup_effect_slope"]
    assert rows.loc["log_loss", "difference"] == pytest.approx(np.mean(-np.log(confidence)) + math.log(0.45))
    assert (rows.difference_lo <= rows.difference).all() and (rows.difference <= rows.difference_hi).all()
    assert rows.loc["log_loss", "difference_hi"] < 0 and rows.loc["subgroup_effect_slope", "difference_lo"] > 0
    said = lever_sentence(table)
    assert "epochs: 1 to 3 at 40 respondents (`lever` against `before`): log-loss -0." in said
    assert said.count("(better)") == 2 and said.endswith("(better).")
    swapped = lever_table([("before", "lever", "epochs: 3 to 1")], {"before": 40}, distributions, population, 200, 1,
                          5, VARIABLES)
    assert swapped.difference.tolist() == pytest.approx((-table.difference).tolist())
    assert lever_sentence(swapped).count("(worse)") == 2 and lever_sentence(table.iloc[:0]) is None
    level = table.assign(difference_lo=-1.0, difference_hi=1.0)
    assert lever_sentence(level).count("(level)") == 2
    both_ways = lever_table([("lever", "before", "x"), ("before", "lever", "x")], {"lever": 40, "before": 40},
                            distributions, population, 200, 1, 5, VARIABLES)
    assert lever_sentence(both_ways).count("x at 40 respondents") == 2  # one lever's words, two pairs
    two = {"lever": pd.concat([panel("m-lora", lambda i: 0.5), panel("n-lora", lambda i: 0.5)]),
           "before": distributions["before"]}
    with pytest.raises(ValueError, match=r"lever: expected one fine-tuned variant .*\['m-lora', 'n-lora'\]"):
        lever_table([("lever", "before", "x")], {"lever": 40}, two, population, 200, 1, 5, VARIABLES)


def test_notebook_07_writes_the_levers_and_check_results_recomputes_them(tmp_roots):
    """Two points at one size, one epoch and three: the table, the README's sentence, and `make check-results`
    passing on it and naming the row and column of a stored value changed beyond its tolerance."""
    config = load_config("smoke", overrides={"learning_curve": [{"respondents": 40}, {"respondents": 40,
                                                                                      "epochs": 3}]})
    fake_dataset(config, [])
    assert check_learning_curve(config) == []  # nothing to check before notebook 07 ran
    for name, confidence in zip(learning_curve_runs(config), (lambda i: 0.45, lambda i: 0.6 + 0.075 * (i % 5))):
        fake_point(config, name, 40, dict(zip(VARIANTS, (0.8, 1.1, 0.82, 0.9))), (0.0, -0.1, 0.1))
        frame = pd.concat([panel("smollm2-135m-lora", confidence), panel("smollm2-135m-zeroshot", lambda i: 0.2)])
        (paths.RunPaths("smoke", name).results / "panel_distributions.csv").write_text(
            distributions_csv(with_answer_columns(frame), VARIABLES))
    run_learning_curve(config)
    where = config.paths()
    stored = pd.read_csv(where.tables / "learning_curve_levers.csv")
    assert stored.lever.tolist() == ["epochs: 1 to 3"] * 2
    assert stored.point.tolist() == ["curve-smollm2-135m-sft-40-e3"] * 2
    assert "epochs: 1 to 3 at 40 respondents (`curve-smollm2-135m-sft-40-e3` against `curve-smollm2-135m-sft-40`)" \
        in (where.results / "README.md").read_text()
    checks = check_learning_curve(config)
    assert [c.table for c in checks] == ["learning_curve", "learning_curve_levers"]
    assert not any(c.problems for c in checks)
    stored.loc[0, "difference"] += 0.001
    stored.to_csv(where.tables / "learning_curve_levers.csv", index=False)
    curve = pd.read_csv(where.tables / "learning_curve.csv")
    curve.loc[0, "value"] += 0.001  # the curve's table edited by hand: it no longer copies its point's tables
    curve.to_csv(where.tables / "learning_curve.csv", index=False)
    table, levers = check_learning_curve(config)
    assert len(table.problems) == 1 and "column value" in table.problems[0]
    assert len(levers.problems) == 1 and "row 1 (lever=epochs: 1 to 3" in levers.problems[0]
    assert "column difference" in levers.problems[0]
