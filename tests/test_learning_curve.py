"""The learning curve: its points, the survey respondents they train on (never a panel respondent), which points
are missing, and the table, figure and README section built from their panel tables."""
import json

import numpy as np
import pandas as pd
import pytest

from polypersona_utils import paths
from polypersona_utils.config import ConfigError, load_config, load_run, run_of
from polypersona_utils.dataset.splits import curve_respondents, run_view
from polypersona_utils.panel.report import result_settings
from polypersona_utils.provenance import write_jsonl
from polypersona_utils.runs.learning_curve import (collect, largest_point_sentence, learning_curve_runs,
                                                   missing_points, run_learning_curve)
from polypersona_utils.study import StudyRun

VARIANTS = ("smollm2-135m-lora", "smollm2-135m-zeroshot", "baseline-logistic", "baseline-population")


def test_points_are_runs_named_by_their_definition():
    config = load_config("default")
    runs = learning_curve_runs(config)
    assert list(runs)[:4] == ["curve-smollm2-135m-sft-512-top8-fp32", "curve-smollm2-135m-sft-512-fp32",
                              "curve-smollm2-135m-sft-all-top8-fp32", "curve-smollm2-135m-sft-512-top8-fp32-lr0.001"]
    assert {"curve-smollm2-135m-options-all-top8-fp32-lr0.001", "curve-gemma3-270m-sft-all-top8-fp32-lr0.001"} <= set(
        runs)
    assert runs["curve-smollm2-135m-sft-512-top8-fp32"] == {
        "ablation.respondent_pool": "survey", "ablation.training_respondents": 512,
        "ablation_runs.model": "smollm2-135m", "training.packing": "respondent", "training.objective": "sft",
        "training.epochs": 1.0, "lora.top_layers": 8, "training.quantization": "none",
        "training.compute_dtype": "float32"}
    name = "curve-gemma3-270m-sft-512-top8-fp32-lr0.001"
    gemma = load_run("default", name, runs[name])
    assert [m.name for m in gemma.models] == ["gemma3-270m"]  # a point trains and scores its own model
    assert run_of(config, name, runs[name]) == gemma  # a loaded config as a run: the same
    twice = load_config("smoke", overrides={"learning_curve": [{"respondents": 2}, {"respondents": 2}]})
    with pytest.raises(ValueError, match="two points define the same run"):
        learning_curve_runs(twice)
    with pytest.raises(ConfigError, match=r"learning_curve\[0\].model: must name one of the models"):
        load_config("smoke", overrides={"learning_curve": [{"model": "gpt-9"}]})
    with pytest.raises(ConfigError, match="training_respondents: null .* only with respondent_pool: survey"):
        load_config("smoke", overrides={"run": "x", "ablation.training_respondents": None})


def fake_dataset(config, persona_ids: list[str]) -> None:
    """A dataset folder holding only what the panel draw reads: the personas of each split."""
    folder = paths.data_dir(config.profile)
    folder.mkdir(parents=True, exist_ok=True)
    write_jsonl(folder / "train.jsonl", [{"persona_id": pid} for pid in persona_ids])
    for split in ("val", "test"):
        write_jsonl(folder / f"{split}.jsonl", [])


def curve_run(k, profile="smoke"):
    overrides = {"ablation.respondent_pool": "survey", "ablation.training_respondents": k}
    return load_run(profile, f"curve-{k}", overrides)


def test_curve_respondents_are_nested_and_never_on_the_panel(tmp_roots):
    """The leakage check of the curve: no training respondent of any point is a panel respondent; a larger point
    keeps a smaller one's respondents and their records; every record is a respondent's real answer."""
    main = load_config("smoke")
    eligible = StudyRun(main).eligible
    fake_dataset(main, [r.persona_id for r in eligible[:5]])
    panel = {r.persona_id for r in StudyRun(main).panel}
    assert len(panel) == main.panel.respondents
    small, large, everyone = curve_run(3), curve_run(40), curve_run(None)
    assert {r.persona_id for r in StudyRun(small).panel} == panel  # a point is scored on the whole panel
    chosen = [r.persona_id for r in curve_respondents(large)]
    assert len(chosen) == 40 and chosen[:3] == [r.persona_id for r in curve_respondents(small)]
    pool = curve_respondents(everyone)
    assert len(pool) == len(eligible) - len(panel) and not panel & {r.persona_id for r in pool}
    assert [r.persona_id for r in StudyRun(large).training_respondents] == chosen  # the references' respondents
    records = run_view([], "train", large)
    assert {r["persona_id"] for r in records} == set(chosen) and run_view([], "val", large) == []
    answers = {r.persona_id: r.answers for r in curve_respondents(large)}
    assert len(records) == sum(len(a) for a in answers.values())
    assert all(r["reference"] == answers[r["persona_id"]][r["question_id"]] for r in records)
    assert all(r["reference_source"] == "real_respondent" and r["messages"][-1]["content"] == r["reference"]
               for r in records)
    first = [r for r in records if r["persona_id"] in chosen[:3]]
    assert first == run_view([], "train", small)  # the same records, options in the same order, at every size
    orders = {tuple(r["options"]) for r in records}
    assert len(orders) > 1  # mixed: some options reversed


def test_a_point_is_missing_until_scored_with_its_present_settings_on_its_present_panel(tmp_roots):
    config = load_config("smoke", overrides={"learning_curve": [{"respondents": 2}, {"respondents": 4}]})
    eligible = [r.persona_id for r in StudyRun(config).eligible]
    fake_dataset(config, eligible[:5])
    panel = [r.persona_id for r in StudyRun(config).panel]
    runs = learning_curve_runs(config)
    assert missing_points(config) == list(runs)
    for name, overrides in runs.items():
        folder = paths.RunPaths("smoke", name).results
        (folder / "provenance").mkdir(parents=True)
        (folder / "provenance" / "06_panel.json").write_text(json.dumps(
            {"result_settings": result_settings(load_run("smoke", name, overrides))}))
        pd.DataFrame({"persona_id": panel, "variant": "x"}).to_csv(folder / "panel_distributions.csv", index=False)
    assert missing_points(config) == []  # a committed point is read, not rerun
    sweep = load_config("smoke", overrides={"learning_curve": [{"respondents": 2}, {"respondents": 4}],
                                            "ablation_runs.rank_factors": [0.5], "ablation_runs.kinds": ["rank"]})
    assert missing_points(sweep) == []  # which standard ablation runs exist changes no point
    for name, overrides in runs.items():  # recorded while the settings held the whole ablation_runs section
        record = result_settings(load_run("smoke", name, overrides))
        record["training"]["ablation_runs"] |= {"rank_factors": [0.5, 2, 4], "kinds": ["rank"],
                                                "heldout_domain": "healthcare"}
        (paths.RunPaths("smoke", name).results / "provenance" / "06_panel.json").write_text(
            json.dumps({"result_settings": record}))
    assert missing_points(config) == []
    changed = load_config("smoke", overrides={"learning_curve": [{"respondents": 2}, {"respondents": 4}],
                                              "training.learning_rate": 1e-4})
    assert missing_points(changed) == list(runs)  # scored with other settings: run again
    more = load_config("smoke", overrides={"learning_curve": [{"respondents": 2}, {"respondents": 8}]})
    assert missing_points(more) == ["curve-smollm2-135m-sft-8"]
    fake_dataset(config, eligible[:5] + panel[:1])  # the dataset now holds a panel respondent: another panel
    assert missing_points(config) == list(runs)  # scored on other respondents (same settings): run again


def fake_point(config, name: str, respondents: int, log_loss: dict[str, float], difference: tuple) -> None:
    """The panel tables and provenance notebook 06 writes for a point, with known numbers."""
    folder = paths.RunPaths(config.profile, name)
    folder.tables.mkdir(parents=True, exist_ok=True)
    pd.DataFrame([{"variant": v, "respondents": 16, "log_loss": log_loss[v], "log_loss_lo": log_loss[v] - 0.05,
                   "log_loss_hi": log_loss[v] + 0.05, "accuracy": 0.5, "accuracy_lo": 0.4, "accuracy_hi": 0.6}
                  for v in VARIANTS]).to_csv(folder.tables / "panel_individual.csv", index=False)
    pd.DataFrame([{"variant": v, "cells": 30, "correlation": 0.5, "correlation_lo": 0.0, "correlation_hi": 0.8,
                   **({"slope": 0.4, "slope_lo": 0.3, "slope_hi": 0.5} if v == "baseline-logistic" else
                      {"slope": 0.1, "slope_lo": 0.0, "slope_hi": 0.2})}
                  for v in VARIANTS]).to_csv(folder.tables / "panel_effects.csv", index=False)
    pd.DataFrame([{"variant": v, "variable": variable, "category": variable, "alignment": alignment,
                   "alignment_lo": alignment - 0.01, "alignment_hi": alignment + 0.01}
                  for v in VARIANTS for variable, alignment in (("all", 0.95), ("party", 0.5))]
                 ).to_csv(folder.tables / "panel_alignment.csv", index=False)
    pd.DataFrame([{"variant": "smollm2-135m-lora", "reference": "baseline-logistic", "measure": measure,
                   "difference": difference[0], "difference_lo": difference[1], "difference_hi": difference[2],
                   "ci_method": "BCa"} for measure in ("log_loss", "subgroup_effect_slope")]
                 + [{"variant": "smollm2-135m-lora", "reference": "baseline-population", "measure": "log_loss",
                     "difference": 9.0, "difference_lo": 8.0, "difference_hi": 10.0, "ci_method": "BCa"}]
                 ).to_csv(folder.tables / "panel_paired.csv", index=False)
    (folder.results / "provenance").mkdir(parents=True, exist_ok=True)
    (folder.results / "provenance" / "06_panel.json").write_text(json.dumps({"training_respondents": respondents}))


def test_collect_writes_table_figure_and_section(tmp_roots):
    config = load_config("smoke", overrides={"learning_curve": [{"respondents": 2}, {"respondents": None}]})
    with pytest.raises(FileNotFoundError, match="no learning-curve point of smoke.*make learning-curve PROFILE=smoke"):
        collect(config)
    fake_point(config, "curve-smollm2-135m-sft-2", 2, dict(zip(VARIANTS, (1.30, 1.10, 0.95, 0.90))),
               (0.35, 0.30, 0.40))
    partial = run_learning_curve(config)  # committed point by point: the scored ones, the others named
    assert set(partial.run) == {"curve-smollm2-135m-sft-2"}
    assert "Not scored yet (`make learning-curve` runs them, each committed when scored): `curve-smollm2-135m-sft-all`" \
        in (config.paths().results / "README.md").read_text()
    fake_point(config, "curve-smollm2-135m-sft-all", 1700, dict(zip(VARIANTS, (0.80, 1.10, 0.82, 0.90))),
               (-0.02, -0.03, -0.01))
    run = paths.RunPaths(config.profile, "curve-smollm2-135m-sft-all")  # trained in one session, scored in another
    (run.results / "training_metrics.json").write_text(json.dumps(
        {"smollm2-135m": {"lower_states_s_this_session": 40.0, "wall_time_s_this_session": 80.0}}))
    run.executed.mkdir(parents=True)
    for notebook, seconds in (("02_train", 5.0), ("06_panel", 180.0)):  # 02 found the adapter trained
        (run.executed / f"{notebook}.ipynb").write_text(json.dumps({"metadata": {"papermill": {"duration": seconds}}}))
    curve = run_learning_curve(config)
    lora = curve[(curve.variant == "smollm2-135m-lora") & (curve.measure == "log_loss")]
    assert lora.set_index("training_respondents").value.to_dict() == {2: 1.30, 1700: 0.80}  # all: the count run
    paired = curve[curve.measure == "log_loss_minus_baseline-logistic"]
    assert paired[["value", "low", "high"]].values.tolist() == [[0.35, 0.30, 0.40], [-0.02, -0.03, -0.01]]
    assert set(curve[curve.measure == "alignment"].value) == {0.95}  # the whole panel's row, not a subgroup's
    assert set(curve.measure) == {"log_loss", "accuracy", "subgroup_effect_correlation", "subgroup_effect_slope",
                                  "alignment", "log_loss_minus_baseline-logistic",
                                  "subgroup_effect_slope_minus_baseline-logistic", "log_loss_minus_baseline-population"}
    where = config.paths()
    assert (where.figures / "learning_curve.png").stat().st_size > 10_000
    readme = (where.results / "README.md").read_text()
    sentence = largest_point_sentence(curve)
    assert sentence.startswith("At 1,700 training respondents the fine-tuned panel (`curve-smollm2-135m-sft-all`) "
                               "beats the statistician") and "-0.020 [-0.030, -0.010]" in sentence
    assert sentence.endswith(" It is worse than the persona-blind population marginal (`baseline-population`, fitted "
                             "on the same respondents) by +9.000 [+8.000, +10.000] (log-loss, paired) and its "
                             "subgroups differ 0.100 [0.000, 0.200] as much as the real ones (the statistician's: "
                             "0.400 [0.300, 0.500]).")
    assert sentence in readme and readme.index("1,700") < readme.index("| curve-smollm2-135m-sft-2 ")
    assert "for the session that finished it; panel: notebook 06): `curve-smollm2-135m-sft-all` 2.0 + 3.0." in readme
    provenance = json.loads((where.results / "provenance" / "07_learning_curve.json").read_text())
    assert provenance["runs"] == ["curve-smollm2-135m-sft-2", "curve-smollm2-135m-sft-all"]
    level = curve.copy()
    level.loc[level.measure == "log_loss_minus_baseline-logistic", "high"] = 0.01
    assert " is level with the statistician" in largest_point_sentence(level)


def test_the_figure_draws_a_far_zero_shot_point_as_an_arrow_with_its_value(tmp_roots):
    """A zero-shot log-loss far above the rest would squash the points that matter into a line: it is an arrow at
    the axis' edge with its value written, and every other point and interval stays inside the axis."""
    from polypersona_utils.runs.curve_figure import draw_curve

    config = load_config("smoke", overrides={"learning_curve": [{"respondents": 512}]})
    fake_point(config, "curve-smollm2-135m-sft-512", 512, dict(zip(VARIANTS, (0.89, 2.08, 0.82, 0.87))),
               (0.07, 0.06, 0.09))
    curve = collect(config)
    fig = draw_curve(curve, "t")
    loss = fig.axes[0]
    low, high = loss.get_ylim()
    assert 0.92 < high < 1.5 and low < 0.77  # 0.82 - 0.05 inside; 2.08 beyond the top
    assert [t.get_text() for t in loss.texts] == ["2.08"]
    assert "arrows: beyond the axis" in fig._suptitle.get_text()
    slope_low, slope_high = fig.axes[1].get_ylim()
    assert not fig.axes[1].texts and slope_low < 0.0 and slope_high > 0.2  # nothing far there: every point drawn


def test_arrows_side_by_side_share_one_label_and_slopes_are_all_drawn(tmp_roots):
    """Two zero-shot models far above the rest sit side by side at 0 respondents: their values are written once,
    left to right, not over each other; a statistician's slope far above the panel's is drawn with its interval, not
    made an arrow (slopes share one scale)."""
    from polypersona_utils.runs.curve_figure import draw_curve, nearby

    assert nearby([(100, "a", 1.1), (130, "b", 1.1), (300, "c", 1.1), (110, "d", 0.7)], 40) == [
        [(110, "d", 0.7)], [(100, "a", 1.1), (130, "b", 1.1)], [(300, "c", 1.1)]]
    config = load_config("smoke", overrides={"learning_curve": [{"respondents": 512}]})
    fake_point(config, "curve-smollm2-135m-sft-512", 512, dict(zip(VARIANTS, (0.89, 2.08, 0.82, 0.87))),
               (0.07, 0.06, 0.09))
    curve = collect(config)
    zero = curve[curve.variant == "smollm2-135m-zeroshot"]
    gemma = zero.assign(variant="gemma3-270m-zeroshot", model="gemma3-270m",
                        value=zero.value + np.where(zero.measure == "log_loss", 0.42, 0.0))
    curve = pd.concat([curve, gemma], ignore_index=True)
    curve.loc[(curve.variant == "baseline-logistic") & (curve.measure == "subgroup_effect_slope"),
              ["value", "low", "high"]] = (0.9, 0.85, 0.95)
    fig = draw_curve(curve, "t")
    assert [t.get_text() for t in fig.axes[0].texts] == ["2.08, 2.50"]
    assert not fig.axes[1].texts and fig.axes[1].get_ylim()[1] > 0.95


def test_a_lever_is_a_point_of_its_own_on_the_curve(tmp_roots):
    """Three epochs at 512 beside one epoch at 512: two runs, two lines of the figure (not one point dropped as a
    repeat), the lever named in the table."""
    from polypersona_utils.runs.curve_figure import curve_series

    points = [{"respondents": 512}, {"respondents": 512, "epochs": 3}, {"respondents": 512, "learning_rate": 1e-3}]
    config = load_config("smoke", overrides={"learning_curve": points})
    assert list(learning_curve_runs(config)) == ["curve-smollm2-135m-sft-512", "curve-smollm2-135m-sft-512-e3",
                                                 "curve-smollm2-135m-sft-512-lr0.001"]
    for name, loss in zip(learning_curve_runs(config), (0.89, 0.85, 0.87)):
        fake_point(config, name, 512, dict(zip(VARIANTS, (loss, 2.08, 0.82, 0.87))), (loss - 0.82, 0.0, 0.1))
    curve = collect(config)
    assert dict(zip(curve.run, curve.levers)) == {"curve-smollm2-135m-sft-512": "",
                                                  "curve-smollm2-135m-sft-512-e3": "e3",
                                                  "curve-smollm2-135m-sft-512-lr0.001": "lr0.001"}
    lines = curve_series(curve)
    lora = lines[lines.variant.str.endswith("-lora") & (lines.measure == "log_loss")]
    assert dict(zip(lora.series, lora.value)) == {"smollm2-135m sft nf4": 0.89, "smollm2-135m sft nf4 e3": 0.85,
                                                  "smollm2-135m sft nf4 lr0.001": 0.87}
    # the verdict's first sentence is not picked among levers tried on the test panel (e3 scores best here)
    assert "(`curve-smollm2-135m-sft-512`) is level with" in largest_point_sentence(curve)
    assert "(`curve-smollm2-135m-sft-512-e3`)" in largest_point_sentence(curve[curve.levers == "e3"])
