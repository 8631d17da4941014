"""What make asks the package when it starts: step stamps from the step's own settings functions, each step's code
prerequisites from its notebook's imports, the standard ablation runs from the package."""
import dataclasses
import json

import pytest

from polypersona_utils import paths
from polypersona_utils.config import Config, ConfigError, SeedsConfig, load_config
from polypersona_utils.make_plan import (import_graph, module_imports, notebook_modules, prepare, sources_makefile,
                                         step_settings)
from polypersona_utils.modeling.training import run_fingerprint
from polypersona_utils.runs.learning_curve import learning_curve_runs
from polypersona_utils.runs.new_items import new_items_runs


def write(tmp_path, text):
    path = tmp_path / "x.yaml"
    path.write_text(text)
    return path


def test_every_setting_belongs_to_a_step():
    """A field no step reads would change results without make rerunning anything."""
    claimed = {key for settings in step_settings(load_config("smoke")).values() for key in settings}
    top = {f.name for f in dataclasses.fields(Config)} - {"run", "source_file", "seeds"}
    assert top <= {key.split(".")[0] for key in claimed}
    assert {f"seeds.{f.name}" for f in dataclasses.fields(SeedsConfig)} <= claimed


def test_the_train_stamp_and_the_run_fingerprint_come_from_one_function(tmp_path):
    config = load_config("smoke")
    stamp = step_settings(config)["train"]
    fingerprint = run_fingerprint(config, config.models[0], {}, include_persona=True)
    assert {k: v for k, v in stamp.items() if k != "models"} == {
        k: v for k, v in fingerprint.items() if k not in ("model", "data")}
    subset = [load_config("smoke", overrides={"run": "respondents-k", "ablation.training_respondents": k})
              for k in (0, 2, 4)]
    prints = [run_fingerprint(c, c.models[0], {}, include_persona=True) for c in subset]
    assert prints[1] != prints[2] and prints[1]["ablation.training_respondents"] == 2  # a size is its own adapter
    assert "ablation.training_respondents" not in prints[0]  # runs without respondents keep their fingerprints
    point = load_config("smoke", overrides={"run": "p", "ablation.respondent_pool": "survey",
                                            "ablation.training_respondents": None})
    assert run_fingerprint(point, point.models[0], {}, include_persona=True)["ablation.respondent_pool"] == "survey"


def test_step_stamp_changes_only_with_its_own_settings(tmp_path, monkeypatch):
    monkeypatch.setattr(paths, "PARAMS_DIR", tmp_path)
    params = write(tmp_path, "profile: x\ngeneration:\n  temperature: 0.7\n")
    stamps = tmp_path / "stamps"

    def rewritten():
        before = {p.name: p.read_text() for p in stamps.glob("*.json")} if stamps.exists() else {}
        prepare("x", stamps)
        return {p.stem for p in stamps.glob("*.json") if before.get(p.name) != p.read_text()}

    assert rewritten() == {"data", "train", "generate", "metrics", "panel", "ablation_runs", "learning_curve",
                          "new_items"}
    assert rewritten() == set()  # nothing changed: no stamp rewritten, make sees nothing new
    params.write_text("profile: x\ngeneration:\n  temperature: 0.9\n")  # sampling: generation and the panel
    assert rewritten() == {"generate", "panel"}
    params.write_text("profile: x\ngeneration:\n  temperature: 0.9\nlora:\n  r: 8\n")
    assert rewritten() == {"train"}


def test_each_step_depends_on_the_modules_its_notebook_runs():
    graph = import_graph()
    data = notebook_modules("01_build_dataset", graph)
    assert {"dataset.records", "dataset.personas", "dataset.prompts", "dataset.teacher"} <= set(data)
    # training code does not rebuild the dataset
    assert "modeling.training" not in data and "evaluation.scoring" not in data
    train = notebook_modules("02_train", graph)
    assert "modeling.training" in train and not any(m.startswith(("evaluation.", "panel.")) for m in train)
    assert "evaluation.scoring" in notebook_modules("04_metrics", graph)
    smoke = load_config("smoke", overrides={"learning_curve": [{"respondents": 2}, {"respondents": 4}]})
    text = sources_makefile(smoke)
    assert "TRAIN_SOURCES := " in text
    assert "LEARNING_CURVE_RUNS := curve-smollm2-135m-sft-2 curve-smollm2-135m-sft-4\n" in text
    assert "polypersona_utils/runs/learning_curve.py" in text.split("LEARNING_CURVE_SOURCES := ")[1].split("\n")[0]


def test_the_standard_ablations_follow_the_profiles_rank():
    from polypersona_utils.runs.ablations import reference_run, standard_ablations

    eight = load_config("default", overrides={"lora.r": 8, "lora.alpha": 16})
    runs = standard_ablations(eight)
    assert reference_run(eight) == "rank8" and runs["rank8"] == {}
    assert runs["rank4"] == {"lora.r": 4, "lora.alpha": 8} and runs["rank32"] == {"lora.r": 32, "lora.alpha": 64}
    assert list(standard_ablations(load_config("default")))[:4] == ["rank16", "rank8", "rank32", "rank64"]
    assert list(standard_ablations(load_config("default")))[4:] == ["heldout-healthcare", "no-persona", "lora-16bit"]
    assert list(standard_ablations(load_config("smoke"))) == ["rank16", "rank32", "no-persona"]  # rank_factors: [2],
    # kinds: [rank, no-persona]
    with pytest.raises(ConfigError, match="rank_factors: distinct positive factors other than 1"):
        load_config("smoke", overrides={"ablation_runs.rank_factors": [1]})


@pytest.mark.parametrize("profile", ["smoke", "default"])
def test_prepare_prints_the_standard_runs(profile, tmp_path):
    from polypersona_utils.runs.ablations import standard_ablations

    config = load_config(profile)
    assert prepare(profile, tmp_path) == list(standard_ablations(config))
    # each standard and learning-curve run's overrides, stamped: a run defined differently in the code runs again
    stamped = {f.stem: json.loads(f.read_text()) for f in (tmp_path / "runs").glob("*.json")}
    assert stamped == standard_ablations(config) | learning_curve_runs(config) | new_items_runs(config)
    makefile = (paths.PROJECT_ROOT / "Makefile").read_text()
    assert makefile.count("$(STAMPS)/runs/%.json") == 2  # the runs' manifest rule and their panel rule


def test_one_command_line_runs_every_command_the_makefile_calls_and_no_notebook_imports_it():
    import re
    import subprocess
    import sys

    from polypersona_utils.cli import parser

    makefile = (paths.PROJECT_ROOT / "Makefile").read_text()
    called = set(re.findall(r"-m polypersona_utils ([a-z-]+)", makefile))
    commands = set(parser()._subparsers._group_actions[0].choices)
    assert called and called <= commands
    assert not re.search(r"-m polypersona_utils\.", makefile)  # no module is a command of its own
    listed = subprocess.run([sys.executable, "-m", "polypersona_utils", "--help"], capture_output=True, text=True,
                            check=True).stdout
    assert all(command in listed for command in commands)
    assert not any("__main__" in p.read_text() for p in paths.PACKAGE_DIR.rglob("*.py") if p.stem != "__main__")
    assert module_imports("from .a import x\n\ndef f():\n    from .b import y\n", "m") == {"a", "b"}  # lazy ones count
    # relative imports resolve from the importing module's stage; `from package import module` names the module
    assert module_imports("from .a import x\nfrom .. import paths\nfrom ..llm import models\n", "panel.m",
                          {"panel.a", "paths", "llm.models"}) == {"panel.a", "paths", "llm.models"}
    graph = import_graph()
    for notebook in ("01_build_dataset", "02_train", "03_generate", "04_metrics", "06_panel"):
        assert not {"cli", "__main__"} & set(notebook_modules(notebook, graph))
    # the results check reads the panel report; notebook 04 (metrics) never runs it
    assert not any(m.startswith("panel") for m in notebook_modules("04_metrics", graph))