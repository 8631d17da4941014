"""Notebooks through the same Make targets a user runs, on the smoke profile."""
import json
import re
import subprocess

import pytest

from polypersona_utils import paths
from polypersona_utils.dataset import check_leakage
from polypersona_utils.provenance import read_jsonl


def test_source_notebooks_have_no_outputs_and_one_parameters_cell():
    notebooks = sorted(paths.NOTEBOOKS_DIR.glob("*.ipynb"))
    assert [p.name for p in notebooks][:1] == ["01_build_dataset.ipynb"]
    for path in notebooks:
        cells = json.loads(path.read_text())["cells"]
        assert all(not c.get("outputs") and not c.get("execution_count") for c in cells if c["cell_type"] == "code")
        tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(tagged) == 1, path.name
        # Plain literals only: a derived value here would not follow an injected parameter.
        for line in "".join(tagged[0]["source"]).splitlines():
            assert "(" not in line.split("#")[0], f"{path.name}: parameters cell computes: {line}"


@pytest.mark.slow
def test_make_data_runs_notebook_01_on_smoke_and_then_does_nothing():
    subprocess.run(["make", "data", "PROFILE=smoke"], cwd=paths.PROJECT_ROOT, check=True)
    executed_without_error("01_build_dataset.ipynb")
    splits = {n: read_jsonl(paths.data_dir("smoke") / f"{n}.jsonl") for n in ("train", "val", "test")}
    check_leakage(splits)
    assert all(splits.values())
    # Nothing changed: the target is up to date and make has no work to do.
    assert subprocess.run(["make", "-q", "data", "PROFILE=smoke"], cwd=paths.PROJECT_ROOT).returncode == 0


def executed_without_error(name: str) -> dict:
    notebook = json.loads((paths.executed_dir("smoke") / name).read_text())
    assert notebook["metadata"]["papermill"]["parameters"] == {"profile": "smoke"}
    assert not any(o.get("output_type") == "error" for c in notebook["cells"] for o in c.get("outputs", []))
    return notebook


@pytest.mark.slow
def test_make_train_runs_notebook_02_on_smoke():
    subprocess.run(["make", "train", "PROFILE=smoke"], cwd=paths.PROJECT_ROOT, check=True)
    executed_without_error("02_train.ipynb")
    manifest = json.loads((paths.adapters_dir("smoke") / "manifest.json").read_text())
    run_dir = paths.PROJECT_ROOT / manifest["smollm2-135m"]["run_dir"]
    assert (run_dir / "adapter_model.safetensors").exists() and (run_dir / "training_complete.json").exists()
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["plan"]["quantization"] == "nf4" and metrics["val_loss"]
    assert (paths.figures_dir("smoke") / "loss_smollm2-135m.png").exists()
    assert subprocess.run(["make", "-q", "train", "PROFILE=smoke"], cwd=paths.PROJECT_ROOT).returncode == 0


@pytest.mark.slow
def test_make_generate_and_metrics_on_smoke_then_check_results():
    subprocess.run(["make", "metrics", "PROFILE=smoke"], cwd=paths.PROJECT_ROOT, check=True)
    executed_without_error("03_generate.ipynb")
    executed_without_error("04_metrics.ipynb")
    for variant in ("smollm2-135m-zeroshot", "smollm2-135m-lora"):
        rows = read_jsonl(paths.predictions_dir("smoke") / f"{variant}.jsonl")
        assert sorted(r["id"] for r in rows) == sorted(r["id"] for r in read_jsonl(paths.data_dir("smoke") / "test.jsonl"))
    results = paths.results_dir("smoke")
    for table in ("model_comparison", "survey_metrics", "domain_metrics", "closed_alignment", "paired_differences"):
        for suffix in (".csv", ".md", ".tex"):
            assert (results / "tables" / f"{table}{suffix}").exists()
    assert "NOT the paper's numbers" in (results / "README.md").read_text()
    settings = json.loads((results / "metric_settings.json").read_text())
    assert settings["bertscore_num_layers"] == 6 and "tok:13a" in settings["sacrebleu_signature"]
    assert subprocess.run(["make", "-q", "metrics", "PROFILE=smoke"], cwd=paths.PROJECT_ROOT).returncode == 0
    # The stored answers reproduce every table.
    subprocess.run(["make", "check-results", "PROFILE=smoke"], cwd=paths.PROJECT_ROOT, check=True)


@pytest.mark.slow
def test_a_generation_setting_reruns_generation_and_metrics_not_data_or_training():
    subprocess.run(["make", "metrics", "PROFILE=smoke"], cwd=paths.PROJECT_ROOT, check=True)  # up to date first
    params = paths.params_file("smoke")
    original = params.read_text()
    assert "yesno: 4" in original
    try:
        params.write_text(original.replace("yesno: 4", "yesno: 5"))
        out = subprocess.run(["make", "metrics", "PROFILE=smoke"], cwd=paths.PROJECT_ROOT, check=True,
                             capture_output=True, text=True).stdout
    finally:
        params.write_text(original)
    ran = set(re.findall(r"notebooks/(\d\d_\w+)\.ipynb", out))
    assert ran == {"03_generate", "04_metrics"}, out[-2000:]
    subprocess.run(["make", "metrics", "PROFILE=smoke"], cwd=paths.PROJECT_ROOT, check=True)  # settings restored
    assert subprocess.run(["make", "-q", "metrics", "PROFILE=smoke"], cwd=paths.PROJECT_ROOT).returncode == 0


@pytest.mark.slow
def test_make_ablations_runs_the_set_and_notebook_05_on_smoke():
    runs = "ABLATION_RUNS=rank16 rank8"  # two of the standard set keep the test short
    subprocess.run(["make", "ablations", "PROFILE=smoke", runs], cwd=paths.PROJECT_ROOT, check=True)
    root = paths.results_dir("smoke") / "runs"
    assert json.loads((root / "rank8" / "overrides.json").read_text()) == {"lora.r": 8, "lora.alpha": 16}
    assert json.loads((root / "rank16" / "overrides.json").read_text()) == {}
    for name in ("02_train", "03_generate", "04_metrics"):
        notebook = json.loads((root / "rank8" / "executed" / f"{name}.ipynb").read_text())
        assert notebook["metadata"]["papermill"]["parameters"]["run"] == "rank8"
    training = json.loads((root / "rank8" / "training_metrics.json").read_text())["smollm2-135m"]
    assert training["trainable_parameters"] == 2_442_240
    assert training["train_examples"] == 4 * 4  # the ablation subset: 4 training personas x 4 questions
    executed_without_error("05_ablations.ipynb")
    table = (paths.tables_dir("smoke") / "ablations.csv").read_text()
    assert "rank8" in table and "main" in table
    differences = (paths.tables_dir("smoke") / "ablation_differences.csv").read_text()
    assert "rank8 - rank16" in differences
    assert "Only 1 test personas: too few to say anything" in (paths.results_dir("smoke") / "ablations.md").read_text()
    assert subprocess.run(["make", "-q", "ablations", "PROFILE=smoke", runs], cwd=paths.PROJECT_ROOT).returncode == 0
    checked = subprocess.run(["make", "check-results", "PROFILE=smoke"], cwd=paths.PROJECT_ROOT, check=True,
                             capture_output=True, text=True).stdout
    assert "results/smoke/runs/rank8: every table recomputed from the stored answers matches" in checked


@pytest.mark.slow
def test_a_failing_notebook_stops_make_and_names_the_partial_notebook(tmp_path):
    profile = "pytest-failing-panel"
    bad = tmp_path / "bad.csv"
    bad.write_text((paths.PROJECT_ROOT / "tests" / "fixtures" / "panel.csv").read_text().replace("nurse-01,34",
                                                                                               "nurse-01,"))
    params = paths.params_file(profile)
    params.write_text(f"profile: {profile}\npersonas:\n  source: file\n  path: {bad}\n  n_personas: 3\n"
                      "questions:\n  questions_per_persona: 2\n")
    try:
        done = subprocess.run(["make", "data", f"PROFILE={profile}"], cwd=paths.PROJECT_ROOT, capture_output=True,
                              text=True)
        partial = paths.executed_dir(profile) / "01_build_dataset.ipynb"
        assert done.returncode != 0
        assert f"notebook 01_build_dataset failed; partial notebook: results/{profile}/executed/" in done.stdout
        errors = [o for c in json.loads(partial.read_text())["cells"] for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert errors and "line 2: field 'age'" in errors[0]["evalue"]
        assert not (paths.data_dir(profile) / "manifest.json").exists()  # the make target was not written
    finally:
        import shutil

        params.unlink()
        shutil.rmtree(paths.artifacts_dir(profile), ignore_errors=True)
        shutil.rmtree(paths.results_dir(profile), ignore_errors=True)
