"""Notebooks through the same Make targets a user runs, on the smoke profile, in a temporary workspace: the tests
write nothing into the checkout (`POLYPERSONA_WORKSPACE`, see paths.py). The Make tests share one workspace and
run in file order: data, train, metrics, then the whole smoke study and its learning curve (the new-items folds:
tests/test_notebook_runs.py, a workspace of their own, so that the two files run beside each other)."""
import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import sys

import pandas as pd
import pytest

from polypersona_utils import paths
from polypersona_utils.dataset.splits import check_leakage
from polypersona_utils.provenance import read_jsonl

from conftest import executed_without_error, make, up_to_date


def test_source_notebooks_have_no_outputs_and_one_parameters_cell_of_plain_values():
    notebooks = sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb"))
    assert [p.name for p in notebooks][:1] == ["01_build_dataset.ipynb"]
    for path in notebooks:
        cells = json.loads(path.read_text())["cells"]
        assert all(not c.get("outputs") and not c.get("execution_count") for c in cells if c["cell_type"] == "code")
        tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, path.name
        # Plain values only: a derived value here would not follow an injected parameter.
        for statement in ast.parse("".join(tagged[0]["source"])).body:
            assert isinstance(statement, ast.Assign) and isinstance(statement.value, ast.Constant), (
                f"{path.name}: parameters cell computes: {ast.unparse(statement)}")


@pytest.mark.slow
def test_make_data_runs_notebook_01_on_smoke_and_then_does_nothing(workspace):
    make("data", "PROFILE=smoke")
    notebook = executed_without_error("01_build_dataset.ipynb")
    logged = "".join("".join(o.get("text", "")) for c in notebook["cells"] for o in c.get("outputs", []))
    assert re.search(r"INFO .*teacher.*\d+ already done", logged), "progress logging is on in notebooks"
    splits = {n: read_jsonl(paths.data_dir("smoke") / f"{n}.jsonl") for n in ("train", "val", "test")}
    check_leakage(splits)
    assert all(splits.values())
    # Nothing changed: the target is up to date and make has no work to do.
    assert up_to_date("data", "PROFILE=smoke")


@pytest.mark.slow
def test_make_train_runs_notebook_02_on_smoke(workspace):
    make("train", "PROFILE=smoke")
    executed_without_error("02_train.ipynb")
    manifest = json.loads((paths.RunPaths("smoke").adapters / "manifest.json").read_text())
    run_dir = workspace / manifest["smollm2-135m"]["run_dir"]
    assert (run_dir / "adapter_model.safetensors").exists() and (run_dir / "training_complete.json").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["plan"]["quantization"] == "nf4" and metrics["val_loss"]
    assert (paths.figures_dir("smoke") / "loss_smollm2-135m.png").exists()
    assert up_to_date("train", "PROFILE=smoke")


@pytest.mark.slow
def test_make_generate_and_metrics_on_smoke_then_check_results(workspace):
    make("metrics", "PROFILE=smoke")
    executed_without_error("03_generate.ipynb")
    executed_without_error("04_metrics.ipynb")
    for variant in ("smollm2-135m-zeroshot", "smollm2-135m-lora"):
        rows = read_jsonl(paths.RunPaths("smoke").predictions / f"{variant}.jsonl")
        assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in read_jsonl(paths.data_dir("smoke") / "test.jsonl"))
    results = paths.results_dir("smoke")
    for table in ("model_comparison", "survey_metrics", "domain_metrics", "closed_alignment", "paired_differences"):
        for suffix in (".csv", ".md", ".tex"):
            assert (results / "tables" / f"{table}{suffix}").exists()
    assert "NOT the paper's numbers" in (results / "README.md").read_text()
    settings = json.loads((results / "metric_settings.json").read_text())
    assert settings["bertscore_num_layers"] == 6 and "tok:13a" in settings["sacrebleu_signature"]
    assert up_to_date("metrics", "PROFILE=smoke")
    # Its manifest hashes the tables notebook 04 wrote, not notebook 01's beside them (nor an older version's leftovers)
    outputs = json.loads((results / "manifest.json").read_text())["outputs"]
    assert "model_comparison.csv" in outputs and (results / "tables" / "dataset_counts.csv").exists()
    assert "dataset_counts.csv" not in outputs
    # The stored answers reproduce every table (it exits 0 with "nothing to check" too: the line says which).
    checked = make("check-results", "PROFILE=smoke", capture=True).stdout
    assert "results/smoke: every table recomputed from the stored answers matches" in checked, checked
    # Answers scored from a file that is not there: said so, not "No rule to make target"
    missing = make("score", "PROFILE=smoke", "PREDICTIONS=/nonexistent/answers.jsonl", "NAME=x", check=False,
                   capture=True)
    assert missing.returncode == 2 and "PREDICTIONS=/nonexistent/answers.jsonl: no such file" in missing.stdout


@pytest.mark.slow
def test_a_generation_setting_replans_generation_and_metrics_not_data_or_training(workspace, tmp_path):
    """What make would run (-n: nothing runs) after a generation setting changed: notebooks 03 and 04 only (make
    rewrites a step's stamp as it starts when the step's settings changed). The profile and the stamps are then put
    back as they were, dates included, and nothing is left to run."""
    assert up_to_date("metrics", "PROFILE=smoke")
    params = paths.params_file("smoke")
    assert params.is_relative_to(workspace)  # the workspace's copy, never the checkout's
    original, dates = params.read_text(), params.stat()
    assert "yesno: 4" in original
    stamps = paths.artifacts_dir("smoke") / "params"
    shutil.copytree(stamps, tmp_path / "stamps")  # copy2: dates kept
    params.write_text(original.replace("yesno: 4", "yesno: 5"))
    try:
        out = make("-n", "metrics", "PROFILE=smoke", capture=True).stdout
    finally:  # the later tests in this module share the workspace
        params.write_text(original)
        os.utime(params, ns=(dates.st_atime_ns, dates.st_mtime_ns))
        shutil.rmtree(stamps)
        shutil.copytree(tmp_path / "stamps", stamps)
    planned = set(re.findall(r"notebooks/(\d\d_\w+)\.ipynb", out))
    assert planned == {"03_generate", "04_metrics"}, out[-2000:]
    assert up_to_date("metrics", "PROFILE=smoke")


@pytest.mark.slow
def test_make_reproduce_runs_the_whole_smoke_study_then_does_nothing(workspace):
    """Every standard ablation run and notebook 05, on top of the main run the tests above built."""
    from polypersona_utils.config import load_config
    from polypersona_utils.runs.ablations import standard_ablations

    STANDARD_ABLATIONS = standard_ablations(load_config("smoke"))

    make("reproduce", "PROFILE=smoke")
    root = paths.results_dir("smoke") / "runs"
    assert sorted(p.name for p in root.iterdir()) == sorted(STANDARD_ABLATIONS)
    for run, overrides in STANDARD_ABLATIONS.items():
        assert json.loads((root / run / "overrides.json").read_text()) == overrides
    for name in ("02_train", "03_generate", "04_metrics"):
        notebook = json.loads((root / "rank32" / "executed" / f"{name}.ipynb").read_text())
        assert notebook["metadata"]["papermill"]["parameters"]["run"] == "rank32"
    training = json.loads((root / "rank32" / "training_metrics.json").read_text())["smollm2-135m"]
    sixteen = json.loads((root / "rank16" / "training_metrics.json").read_text())["smollm2-135m"]
    assert training["trainable_parameters"] == 2 * sixteen["trainable_parameters"]  # LoRA parameters scale with r
    assert training["train_examples"] == 4 * 4  # the ablation subset: 4 training personas x 4 questions
    executed_without_error("05_ablations.ipynb")
    executed_without_error("06_panel.ipynb")
    alignment = pd.read_csv(paths.tables_dir("smoke") / "panel_alignment.csv")
    assert {"smollm2-135m-zeroshot", "smollm2-135m-lora", "baseline-population", "baseline-cell-smoothed",
            "baseline-logistic", "human-split-half"} <= set(alignment.variant)
    assert not alignment[["alignment", "alignment_lo", "alignment_hi", "js_distance"]].isna().any().any()
    individual = pd.read_csv(paths.tables_dir("smoke") / "panel_individual.csv")
    assert not individual.isna().any().any() and (individual.respondents == 16).all()
    panel_rows = read_jsonl(paths.artifacts_dir("smoke") / "panel" / "smollm2-135m-lora.jsonl")
    assert all(abs(sum(r["probabilities"]) - 1) < 1e-4 and r["sampled_option"] in r["options"] for r in panel_rows)
    readme = (paths.results_dir("smoke") / "README.md").read_text()
    assert "## The synthetic panel against held-out real respondents" in readme
    # the README opens with the verdict table, then the headline figure
    lines = readme.splitlines()
    assert lines[0] == "## Verdict" and lines[4].startswith("| variant | kind | base | log-loss |")
    assert next(line for line in lines if line.startswith("![")).endswith("(figures/panel_verdict.png)")
    assert (paths.results_dir("smoke") / "figures" / "panel_verdict.png").exists()
    table = (paths.tables_dir("smoke") / "ablations.csv").read_text()
    assert all(run in table for run in STANDARD_ABLATIONS) and "main" in table
    differences = (paths.tables_dir("smoke") / "ablation_differences.csv").read_text()
    assert "rank32 - rank16" in differences
    assert "Only 1 test personas: too few to say anything" in (paths.results_dir("smoke") / "ablations.md").read_text()
    assert up_to_date("reproduce", "PROFILE=smoke")

    def replanned(module: str) -> set[str]:
        """The main run's notebooks make would rerun were `module` just edited (-W: nothing is touched)."""
        planned = make("-n", "-W", f"polypersona_utils/{module}.py", "data", "train", "generate", "metrics", "panel",
                       "PROFILE=smoke", capture=True).stdout
        return {n for n in ("01_build_dataset", "02_train", "03_generate", "04_metrics", "06_panel")
                if f"notebooks/{n}.ipynb" in planned}
    assert replanned("evaluation/metrics") == {"04_metrics", "06_panel"}  # a metric: the measures, not training
    assert replanned("dataset/teacher") == {"01_build_dataset", "02_train", "03_generate", "04_metrics", "06_panel"}
    assert replanned("panel/worth") == {"06_panel"}
    panel = root / "rank32" / "provenance" / "06_panel.json"  # as make ablation-panels leaves it
    panel.parent.mkdir()
    panel.write_text("{}")
    try:
        assert not up_to_date("ablations", "PROFILE=smoke")  # a run's panel is an input of notebook 05
    finally:
        shutil.rmtree(panel.parent)
    assert up_to_date("ablations", "PROFILE=smoke")
    checked = make("check-results", "PROFILE=smoke", capture=True).stdout
    assert "results/smoke/runs/rank32: every table recomputed from the stored answers matches" in checked


def test_ablation_knobs_do_not_reach_the_standard_set(workspace):
    done = make("-n", "ablations", "PROFILE=smoke", "LORA_R=32", check=False, capture=True)
    assert done.returncode != 0 and "change one named run: make ablation NAME=<run>" in done.stderr


@pytest.mark.slow
def test_make_learning_curve_runs_each_missing_point_then_notebook_07_and_then_nothing(workspace):
    """The smoke curve's one point (params/smoke.yaml: 2 survey respondents, LoRA on the top 2 layers) trained and
    scored on the whole smoke panel by notebooks 02 and 06, then collected by notebook 07; a second call runs no
    point (the point's result was made with the settings it has), as on a fresh clone of committed points."""
    from polypersona_utils.config import load_config
    from polypersona_utils.runs.learning_curve import learning_curve_runs

    (point,) = learning_curve_runs(load_config("smoke"))
    done = make("learning-curve", "PROFILE=smoke", capture=True)
    assert f"learning-curve point {point}" in done.stdout
    provenance = json.loads((paths.RunPaths("smoke", point).results / "provenance" / "06_panel.json").read_text())
    assert provenance["training_respondents"] == 2 and provenance["respondents"] == 16  # the whole smoke panel
    executed_without_error("07_learning_curve.ipynb")
    curve = pd.read_csv(paths.tables_dir("smoke") / "learning_curve.csv")
    assert set(curve.run) == {point} and set(curve.training_respondents) == {2}
    paired = curve[curve.measure == "log_loss_minus_baseline-logistic"]
    assert paired.variant.tolist() == ["smollm2-135m-lora"] and (paired.low <= paired.value).all()
    assert (paths.figures_dir("smoke") / "learning_curve.png").exists()
    assert "## Learning curve" in (paths.results_dir("smoke") / "README.md").read_text()
    again = make("learning-curve", "PROFILE=smoke", capture=True)
    assert "learning-curve point" not in again.stdout and "02_train" not in again.stdout


def test_make_ablation_panels_scores_each_standard_run_then_collects(workspace):
    from polypersona_utils.config import load_config
    from polypersona_utils.runs.ablations import standard_ablations

    planned = make("-n", "ablation-panels", "PROFILE=smoke", capture=True).stdout
    for run in standard_ablations(load_config("smoke")):
        assert f"polypersona_utils run-overrides smoke {run}" in planned
    # A standard run's adapter comes from its notebooks 02-04: its panel runs notebook 06 alone, not 02 again
    assert "for nb in 06_panel; do" in planned and "for nb in 02_train 06_panel; do" not in planned
    assert "--no-print-directory ablations PROFILE=smoke" in planned  # then notebook 05, through make


def test_on_a_fresh_clone_make_installs_then_plans_the_standard_ablation_runs(tmp_path, make_runs_this_interpreter):
    """Before the first install there is no Python to ask for the standard runs: make installs, writes sources.mk
    and starts over, so `make reproduce` on a fresh clone plans every ablation run (it used to plan none and keep
    the committed ones). The install is a stand-in: a 'venv' whose python skips pip and runs this environment's.
    Its own workspace, as fresh as a clone's (the module's shared one has run the whole smoke study by now)."""
    from polypersona_utils.config import load_config
    from polypersona_utils.runs.ablations import standard_ablations

    fresh = tmp_path / "workspace"
    shutil.copytree(paths.PARAMS_DIR, fresh / "params")
    venv = tmp_path / "venv"
    installer = tmp_path / "python-base"
    # called as: python-base -m venv DIR; makes DIR a copy of the session's stand-in, not yet marked installed
    installer.write_text(f'#!/bin/sh\nmkdir -p "$3" && cp -R {shlex.quote(str(make_runs_this_interpreter / "bin"))} "$3/"\n')
    installer.chmod(0o755)
    planned = make("-n", "reproduce", "PROFILE=smoke", f"WORKSPACE={fresh}", f"VENV={venv}",
                   f"PYTHON_BASE={installer}", capture=True).stdout
    assert (venv / ".installed").exists() and (fresh / "artifacts/smoke/params/sources.mk").exists()
    for run in standard_ablations(load_config("smoke")):
        assert f"polypersona_utils run-overrides smoke {run}" in planned
    # A deleted .venv, the workspace's sources.mk left behind: make installs and plans every run again (it used to
    # take the old sources.mk as current, never ask the package, and plan none)
    shutil.rmtree(venv)
    planned = make("-n", "reproduce", "PROFILE=smoke", f"WORKSPACE={fresh}", f"VENV={venv}",
                   f"PYTHON_BASE={installer}", capture=True).stdout
    assert (venv / ".installed").exists()
    for run in standard_ablations(load_config("smoke")):
        assert f"polypersona_utils run-overrides smoke {run}" in planned


def test_a_broken_profile_stops_make_once_with_its_message(workspace):
    (workspace / "params" / "broken.yaml").write_text("profile: broken\ntraining:\n  epochs: .nan\n")
    done = make("data", "PROFILE=broken", check=False, capture=True)
    assert done.returncode != 0
    assert done.stderr.count("training.epochs: must be a finite number") == 1, done.stderr
    assert not (workspace / "results" / "broken").exists() and not (workspace / "artifacts" / "broken").exists()


@pytest.mark.slow
def test_a_failing_notebook_stops_make_and_names_the_partial_notebook(workspace, tmp_path):
    profile = "pytest-failing-panel"
    bad = tmp_path / "bad.csv"
    bad.write_text((paths.PROJECT_ROOT / "tests" / "fixtures" / "panel.csv").read_text().replace("nurse-01,34",
                                                                                               "nurse-01,"))
    params = paths.params_file(profile)
    params.write_text(f"profile: {profile}\npersonas:\n  source: file\n  path: {bad}\n  n_personas: 3\n"
                      "questions:\n  questions_per_persona: 2\n")
    done = make("data", f"PROFILE={profile}", check=False, capture=True)
    partial = paths.RunPaths(profile).executed / "01_build_dataset.ipynb"
    assert done.returncode != 0
    assert f"notebook 01_build_dataset failed; partial notebook: {partial}" in done.stdout
    errors = [o for c in json.loads(partial.read_text())["cells"] for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert errors and "line 2: field 'age'" in errors[0]["evalue"]
    assert not (paths.data_dir(profile) / "manifest.json").exists()  # the make target was not written


def test_a_venv_from_another_clone_is_refused(tmp_path):
    """An editable install is bound to the clone that made it: running another clone's study with it would
    import this package and write into this clone."""
    clone = tmp_path / "other-clone"
    (clone / "polypersona_utils").mkdir(parents=True)
    (clone / "polypersona_utils" / "paths.py").write_text("")
    (clone / "notebooks").mkdir()
    with pytest.raises(paths.WrongCheckoutError, match=f"this is the checkout {clone}, but Python imports"):
        paths.check_checkout(clone / "notebooks")
    paths.check_checkout(paths.NOTEBOOKS_DIR)  # the right clone passes
    # What a notebook of the other clone does first (papermill runs it in that clone's notebooks/).
    start = "from polypersona_utils.notebook_start import start_notebook; start_notebook('smoke')"
    done = subprocess.run([sys.executable, "-c", start], cwd=clone / "notebooks", capture_output=True, text=True)
    assert done.returncode != 0 and "a .venv made in another clone" in done.stderr
