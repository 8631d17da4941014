"""Notebook 01 through the same Make target a user runs, on the smoke profile."""
import json
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
    executed = paths.executed_dir("smoke") / "01_build_dataset.ipynb"
    notebook = json.loads(executed.read_text())
    assert notebook["metadata"]["papermill"]["parameters"] == {"profile": "smoke"}
    assert not any(o.get("output_type") == "error" for c in notebook["cells"] for o in c.get("outputs", []))
    splits = {n: read_jsonl(paths.data_dir("smoke") / f"{n}.jsonl") for n in ("train", "val", "test")}
    check_leakage(splits)
    assert all(splits.values())
    # Nothing changed: the target is up to date and make has no work to do.
    assert subprocess.run(["make", "-q", "data", "PROFILE=smoke"], cwd=paths.PROJECT_ROOT).returncode == 0
