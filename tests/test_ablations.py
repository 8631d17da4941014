"""Ablation overrides and notebook 05's aggregation, on stored run results written here."""
import json

import numpy as np
import pandas as pd
import pytest

from polypersona_utils import paths
from polypersona_utils.config import load_config
from polypersona_utils.runs.ablation_report import ablation_report, cross_run_differences
from polypersona_utils.runs.ablations import overrides_for

SMOKE = load_config("smoke")
REFERENCE_RUN = f"rank{SMOKE.lora.r}"  # the reference run is named by the profile's rank

METRICS = ("bleu_nltk", "rouge1", "bertscore_f1")


def test_knobs_become_overrides():
    assert overrides_for(SMOKE, "rank32", {"LORA_R": "32", "HELDOUT": ""}) == {"lora.r": 32, "lora.alpha": 64}
    assert overrides_for(SMOKE, "x", {"NO_PERSONA": "1", "QUANT": "none"}) == {
        "ablation.include_persona": False, "training.quantization": "none", "training.compute_dtype": "float32"}
    assert overrides_for(SMOKE, "big", {"LORA_R": "8", "FULL": "1"}) == {
        "lora.r": 8, "lora.alpha": 16, "ablation_runs.train_personas": None, "ablation_runs.val_personas": None,
        "ablation_runs.test_personas": None}
    assert overrides_for(SMOKE, REFERENCE_RUN, {}) == {}
    with pytest.raises(SystemExit, match="not standard"):
        overrides_for(SMOKE, "rank5", {})
    with pytest.raises(SystemExit, match="unknown ablation knob"):
        overrides_for(SMOKE, "x", {"LR": "1"})
    # a standard run's name with other settings would leave a different model where notebook 05 expects it
    with pytest.raises(SystemExit, match="standard run with other settings"):
        overrides_for(SMOKE, REFERENCE_RUN, {"LORA_R": "64"})


def test_makefile_takes_the_standard_set_from_the_package():
    makefile = (paths.PROJECT_ROOT / "Makefile").read_text()
    assert "ABLATION_RUNS ?= $(STANDARD_RUNS)" in makefile and "rank8" not in makefile


def write_run(profile, run, overrides, rouge1, bertscore, personas=12, per_persona=4):
    """A finished run as notebook 04 leaves it: per-example scores, a model comparison table, overrides."""
    folder = paths.results_dir(f"{profile}/runs/{run}") if run else paths.results_dir(profile)
    rows = [{"variant": "m-lora", "id": f"p{p:02d}--q{q}", "persona_id": f"p{p:02d}", "bleu_nltk": 0.1,
             "prediction": "Yes" if q == 0 else f"answer {p} {q}",
             "rouge1": rouge1(p, q), "bertscore_f1": bertscore(p, q)} for p in range(personas) for q in range(per_persona)]
    scores = pd.DataFrame(rows)
    (folder / "tables").mkdir(parents=True, exist_ok=True)
    scores.to_csv(folder / "per_example_scores.csv", index=False)
    summary = {"variant": "m-lora", "n": len(scores), "personas": personas}
    for metric in METRICS:
        summary |= {metric: scores[metric].mean(), f"{metric}_low": scores[metric].min(),
                    f"{metric}_high": scores[metric].max()}
    pd.DataFrame([summary]).to_csv(folder / "tables" / "model_comparison.csv", index=False)
    rank = overrides.get("lora.r", 16)
    (folder / "training_metrics.json").write_text(json.dumps({"m": {
        "trainable_parameters": 305_280 * rank, "wall_time_s_this_session": 100.0 + rank,
        "peak_process_memory_gib": 5.0, "train_examples": 32}}))
    if run:
        (folder / "overrides.json").write_text(json.dumps(overrides))


def test_report_pairs_each_run_with_the_reference_on_the_same_records(tmp_roots):
    rng = np.random.default_rng(0)
    noise = {(p, q): rng.uniform(0.2, 0.6) for p in range(12) for q in range(4)}
    write_run("smoke", "", {}, lambda p, q: 0.9, lambda p, q: 0.9)
    write_run("smoke", REFERENCE_RUN, {}, lambda p, q: noise[p, q], lambda p, q: noise[p, q])
    # rank8: exactly 0.1 more ROUGE-1 on every record, the same BERTScore.
    write_run("smoke", "rank8", {"lora.r": 8, "lora.alpha": 16}, lambda p, q: noise[p, q] + 0.1,
              lambda p, q: noise[p, q])
    # held out: only 3 personas' records, each 0.2 lower.
    write_run("smoke", "heldout-x", {"ablation.heldout_domain": "finance"}, lambda p, q: noise[p, q] - 0.2,
              lambda p, q: noise[p, q] - 0.2, personas=3)

    differences = cross_run_differences("smoke")
    rank8 = differences[differences.comparison == f"rank8 - {REFERENCE_RUN}"].set_index("metric")
    assert rank8.loc["rouge1", ["difference", "low", "high"]].tolist() == pytest.approx([0.1, 0.1, 0.1])
    assert rank8.loc["bertscore_f1", ["difference", "low", "high"]].tolist() == pytest.approx([0, 0, 0])
    assert rank8.records.iloc[0] == 48 and rank8.personas.iloc[0] == 12
    heldout = differences[differences.comparison == f"heldout-x - {REFERENCE_RUN}"].set_index("metric")
    assert heldout.loc["rouge1", "difference"] == pytest.approx(-0.2) and heldout.records.iloc[0] == 12

    table = ablation_report("smoke")
    assert sorted(table.run) == ["heldout-x", "main", "rank16", "rank8"]
    assert table.set_index("run").loc["rank8", "trainable_parameters"] == 305_280 * 8
    assert table.set_index("run").loc["rank8", ["top_answer", "top_answer_share"]].tolist() == ["Yes", 0.25]
    report = (paths.results_dir("smoke") / "ablations.md").read_text()
    assert "`rank8` (lora.alpha=16, lora.r=8), 48 records of 12 personas" in report
    assert "rouge1 +0.100 [+0.100, +0.100]" in report and "rouge1 higher than `rank16`" in report
    assert "Only 3 test personas: too few to say anything" in report
    readme = (paths.results_dir("smoke") / "README.md").read_text()
    assert "## Ablations (notebook 05)" in readme and "rouge1 +0.100 [+0.100, +0.100]" in readme
    ablation_report("smoke")  # again: the section is replaced, not repeated
    assert (paths.results_dir("smoke") / "README.md").read_text() == readme
    stored = pd.read_csv(paths.tables_dir("smoke") / "ablation_differences.csv")
    assert len(stored) == 2 * len(METRICS)
    for name in ("ablation_rank", "ablation_runs"):
        assert (paths.figures_dir("smoke") / f"{name}.png").exists()
    provenance = json.loads((paths.results_dir("smoke") / "provenance" / "05_ablations.json").read_text())
    assert set(provenance["runs"]) == {"heldout-x", "rank16", "rank8"} and provenance["reference"] == REFERENCE_RUN


def test_report_without_the_reference_says_so(tmp_roots):
    write_run("smoke", "", {}, lambda p, q: 0.5, lambda p, q: 0.5)
    write_run("smoke", "rank8", {"lora.r": 8, "lora.alpha": 16}, lambda p, q: 0.5, lambda p, q: 0.5)
    ablation_report("smoke")
    assert "No paired comparison: the reference run `rank16` has not finished" in (
        paths.results_dir("smoke") / "ablations.md").read_text()


def test_summary_reads_a_run_whose_fidelity_table_is_empty(tmp_roots):
    """The writer's empty table (no open answer on the run's test records) has the interval columns, and the
    reader accepts a table without them: `make reproduce PROFILE=smoke` once failed here with a KeyError."""
    from polypersona_utils.runs.ablation_report import run_summary
    from polypersona_utils.stats import with_intervals

    write_run("p", "tiny", {"lora.r": 8}, lambda p, q: 0.5, lambda p, q: 0.5, personas=1)
    tables = paths.results_dir("p/runs/tiny") / "tables"
    empty = with_intervals(pd.DataFrame(columns=["variant", "id", "persona_id", "fidelity_gap"]), ("fidelity_gap",),
                           lambda part: [])
    assert {"fidelity_gap_low", "fidelity_gap_high"} <= set(empty.columns)
    empty.to_csv(tables / "persona_fidelity.csv", index=False)
    assert run_summary("p", "tiny", {"lora.r": 8})[0]["fidelity_gap"] is None
    pd.DataFrame([{"variant": "m-lora", "fidelity_gap": 0.1}]).to_csv(tables / "persona_fidelity.csv", index=False)
    row = run_summary("p", "tiny", {"lora.r": 8})[0]
    assert row["fidelity_gap"] == 0.1 and pd.isna(row["fidelity_gap_low"])


def test_runs_with_a_panel_show_its_log_loss_and_effect_correlation(tmp_roots):
    write_run("smoke", "", {}, lambda p, q: 0.5, lambda p, q: 0.5)
    write_run("smoke", "rank8", {"lora.r": 8, "lora.alpha": 16}, lambda p, q: 0.5, lambda p, q: 0.5)
    tables = paths.RunPaths("smoke", "rank8").results / "tables"
    pd.DataFrame([{"variant": "m-lora", "respondents": 16, "log_loss": 0.91, "log_loss_lo": 0.85,
                   "log_loss_hi": 0.97}]).to_csv(tables / "panel_individual.csv", index=False)
    pd.DataFrame([{"variant": "m-lora", "cells": 20, "correlation": 0.4, "correlation_lo": 0.1,
                   "correlation_hi": 0.6}]).to_csv(tables / "panel_effects.csv", index=False)
    table = ablation_report("smoke").set_index("run")
    assert table.loc["rank8", ["panel_log_loss", "panel_correlation_hi"]].tolist() == [0.91, 0.6]
    assert pd.isna(table.loc["main", "panel_log_loss"])  # no panel table: missing, not invented
    report = (paths.results_dir("smoke") / "ablations.md").read_text()
    assert "- `rank8`: log-loss 0.910 [0.850, 0.970], subgroup-effect correlation 0.40 [0.10, 0.60]" in report


def test_a_run_trains_one_model_the_profile_names():
    from polypersona_utils.config import ConfigError, load_config, load_run

    assert [m.name for m in load_config("default").models] == ["smollm2-135m", "gemma3-270m"]
    assert [m.name for m in load_run("default").models] == ["smollm2-135m", "gemma3-270m"]  # the main run: both
    assert [m.name for m in load_run("default", "rank16").models] == ["smollm2-135m"]
    chosen = load_run("default", "rank16", {"ablation_runs.model": "gemma3-270m"})
    assert [(m.name, m.chat_template) for m in chosen.models] == [("gemma3-270m", "plain")]
    with pytest.raises(ConfigError, match="ablation_runs.model: must name one of the models"):
        load_run("default", "rank16", {"ablation_runs.model": "phi-2"})
