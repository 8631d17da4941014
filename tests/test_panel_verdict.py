"""The verdict table (`panel.verdict`), its headline figure and the README's first section, on hand-made
distributions whose numbers are known."""
import math
import re

import numpy as np
import pandas as pd
import pytest

from polypersona_utils.panel.measures import panel_tables, population_effects, with_answer_columns
from polypersona_utils.panel.paired import panel_paired
from polypersona_utils.panel.readme import verdict_findings, verdict_section
from polypersona_utils.panel.verdict import panel_verdict
from test_panel import VARIABLES, hand_made_frame


def confident(confidence):
    """Each respondent's probability `confidence(i)` on their real answer (Democrats "Too little")."""
    def frame():
        out = hand_made_frame(lambda party: [0, 0, 0])
        index = out.persona_id.str[1:].astype(int)
        out["probabilities"] = [[c, (1 - c) / 2, (1 - c) / 2] if r == "Too little" else [(1 - c) / 2, (1 - c) / 2, c]
                                for c, r in zip(index.map(confidence), out.real_option)]
        return out
    return frame()


@pytest.fixture(scope="module")
def tables():
    frames = [confident(lambda i: 0.6 + 0.075 * (i % 5)).assign(variant="model"),
              confident(lambda i: 0.02).assign(variant="model-zeroshot"),  # far worse than every other row
              confident(lambda i: 0.6).assign(variant="baseline-logistic"),
              hand_made_frame(lambda party: [0.45, 0.1, 0.45]).assign(variant="baseline-population")]
    answers = with_answer_columns(pd.concat(frames, ignore_index=True))
    population = with_answer_columns(hand_made_frame(lambda party: [1.0, 0.0, 0.0]))
    real = population_effects(population, VARIABLES)
    out = panel_tables(answers, population, 200, 1, 5, VARIABLES)
    out["panel_paired"] = panel_paired(answers, 200, 1, 5, VARIABLES, real, ["model", "model-zeroshot"],
                                       ["baseline-population", "baseline-logistic"])
    out["panel_verdict"] = panel_verdict(answers, 200, 1, out["panel_individual"], out["panel_effects"], bases={"model": "NF4 + LoRA",
                                                                      "model-zeroshot": "NF4"})
    return out


def test_the_verdict_orders_rows_best_first_with_differences_computed_by_hand(tables):
    verdict = tables["panel_verdict"].set_index("variant")
    assert list(verdict.index) == ["model", "baseline-logistic", "baseline-population", "model-zeroshot"]
    assert list(verdict.kind) == ["model", "reference", "reference", "model"]
    assert list(verdict.base) == ["NF4 + LoRA", "-", "-", "NF4"]
    model_loss = np.mean([-math.log(0.6 + 0.075 * (i % 5)) for i in range(40)])
    assert verdict.loc["model", "log_loss"] == pytest.approx(model_loss)
    assert verdict.loc["model", "vs_marginal"] == pytest.approx(model_loss + math.log(0.45))
    assert verdict.loc["model", "vs_statistician"] == pytest.approx(model_loss + math.log(0.6))
    assert verdict.loc["model", "vs_marginal_ci_method"] == "BCa"
    # a row against itself: 0 on every draw
    assert verdict.loc["baseline-population", ["vs_marginal", "vs_marginal_lo", "vs_marginal_hi"]].tolist() == [0, 0, 0]
    assert verdict.loc["baseline-logistic", "vs_statistician_ci_method"] == "constant"
    for name in ("log_loss", "vs_marginal", "vs_statistician", "slope"):
        assert (verdict[f"{name}_lo"] <= verdict[name] + 1e-12).all()
        assert (verdict[name] <= verdict[f"{name}_hi"] + 1e-12).all()


def test_the_readme_opens_with_the_verdict_table_then_the_headline_figure(tables):
    section = verdict_section(tables, 40)
    lines = section.splitlines()
    assert lines[0] == "## Verdict"
    table = [line for line in lines if line.startswith("| ")]
    assert table[0].startswith("| variant | kind | base | log-loss | minus population marginal | minus same-card "
                               "statistician")
    assert [row.split(" | ")[0] for row in table[1:]] == ["| `model`", "| `baseline-logistic`",
                                                          "| `baseline-population`", "| `model-zeroshot`"]
    assert "| itself |" in table[3]
    assert section.index(table[-1]) < section.index("figures/panel_verdict.png") < section.index("### Each model")
    assert "learning_curve.png" not in section and "learning_curve.png" in verdict_section(tables, 40, None, True)


def test_the_verdict_opens_with_the_learning_curves_largest_point(tables):
    """The first sentence: at the curve's largest size, the best fine-tuned point against the same-card
    statistician, with the paired interval; then the main run's table."""
    rows = [("curve-a-512", 512, 0.010, -0.004, 0.024), ("curve-a-all", 1700, 0.030, 0.012, 0.048),
            ("curve-b-all", 1700, 0.020, 0.005, 0.035)]
    curve = pd.DataFrame([{"run": run, "training_respondents": k, "variant": "m-lora",
                           "measure": "log_loss_minus_baseline-logistic", "value": v, "low": lo, "high": hi}
                          for run, k, v, lo, hi in rows])
    lines = verdict_section(tables, 40, curve=curve).splitlines()
    assert lines[:3] == ["## Verdict", "", "At 1,700 training respondents the fine-tuned panel (`curve-b-all`) is "
                         "worse than the statistician who sees the same card (`baseline-logistic`, fitted on the same "
                         "respondents): log-loss difference +0.020 [+0.005, +0.035] (paired, model minus "
                         "statistician; negative favours the model; the learning curve below)."]
    assert lines[4] == "The main run:" and lines[6].startswith("On 40 held-out real respondents")
    assert verdict_section(tables, 40, curve=curve.iloc[:0]) == verdict_section(tables, 40)  # no point yet


def test_at_most_three_findings_each_with_its_number(tables):
    findings = verdict_findings(tables["panel_verdict"])
    assert 1 <= len(findings) <= 3 and all(re.search(r"\d\.\d{3}", f) for f in findings)
    assert findings[0].startswith("`model`, the best model variant, predicts the held-out answers better than the "
                                  "persona-blind population marginal (-0.")


def test_the_headline_figure_shows_every_row_in_order_and_no_missing_value(tables):
    from polypersona_utils.panel.figures import draw_verdict

    verdict = tables["panel_verdict"].copy()
    verdict.loc[verdict.variant == "model", "vs_statistician"] = np.nan  # a row without a value: not drawn
    fig = draw_verdict(verdict, "test")
    left, right = fig.axes[:2]
    top_down = sorted(zip(left.get_yticks(), (t.get_text() for t in left.get_yticklabels())), reverse=True)
    assert [label for _, label in top_down] == list(verdict.variant)  # best at the top
    for ax in (left, right):
        for line in ax.lines:
            assert np.isfinite(np.asarray(line.get_xydata(), float)).all()
    # the zero-shot row lies far beyond the others: an arrow at the edge, its value written
    written = [t.get_text() for t in left.texts]
    far = verdict.set_index("variant").loc["model-zeroshot", "vs_marginal"]
    assert f"{far:+.2f}" in written and left.get_xlim()[1] < far
    fig.clf()


def test_every_reference_is_a_reference_in_the_verdict_the_item_blind_ones_too():
    """A new-items fold's panel holds the item-blind references beside the fitted ones: none of them is a model."""
    from polypersona_utils.panel.references import ANCHORS, ITEM_BLIND, REFERENCE_VARIANTS
    from polypersona_utils.panel.verdict import kind_of

    assert {kind_of(v) for v in (*REFERENCE_VARIANTS, *ITEM_BLIND)} == {"reference"}
    assert {kind_of(v) for v in ANCHORS} == {"anchor"}
    assert kind_of("smollm2-135m-lora") == kind_of("smollm2-135m-zeroshot") == "model"
