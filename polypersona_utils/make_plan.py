"""What make asks the package when it starts: each step's settings stamp, the package modules each step's notebook
imports (its prerequisites), and the profile's standard ablation runs. Every answer is derived from the code that
uses it: the stamps from the functions that fingerprint or record each step's settings, the module lists from the
notebooks' imports, the ablation list from `ablations.standard_ablations`.

    python -m polypersona_utils prepare PROFILE FOLDER   # writes FOLDER/<step>.json and FOLDER/sources.mk,
                                                         # prints the standard ablation runs
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

from . import paths
from .config import Config, load_config
from .dataset.records import dataset_settings
from .evaluation.scoring import evaluation_settings
from .modeling.generation import generation_settings
from .modeling.training import training_settings
from .panel.report import panel_settings
from .provenance import atomic_write_text
from .runs.ablations import named_runs, standard_ablations, subset_settings
from .runs.learning_curve import learning_curve_runs

# Make's name of each step -> the notebook that runs it.
STEP_NOTEBOOKS = {"data": "01_build_dataset", "train": "02_train", "generate": "03_generate",
                  "metrics": "04_metrics", "panel": "06_panel", "ablations": "05_ablations",
                  "learning_curve": "07_learning_curve", "new_items": "08_new_items"}


def step_settings(config: Config) -> dict[str, dict]:
    """Each step's settings, from the step's own function (the one its fingerprint or provenance uses)."""
    return {"data": dataset_settings(config), "train": training_settings(config),
            "generate": generation_settings(config), "metrics": evaluation_settings(config),
            "panel": panel_settings(config), "ablation_runs": subset_settings(config),
            "learning_curve": config.select(("learning_curve",)),  # the points (each run's own stamp under runs/)
            "new_items": config.select(("new_items",))}


def write_stamp(path: Path, settings: dict) -> bool:
    """Write `settings` unless the file already holds them (its date then stays, and make sees nothing new)."""
    text = json.dumps(settings, indent=1, sort_keys=True, default=str) + "\n"
    if path.exists() and path.read_text(encoding="utf-8") == text:
        return False
    atomic_write_text(path, text)
    return True


def module_name(path: Path) -> str:
    """`polypersona_utils/panel/report.py` -> `panel.report`."""
    return ".".join(path.relative_to(paths.PACKAGE_DIR).with_suffix("").parts)


def module_imports(source: str, module: str = "", known: frozenset[str] | set[str] = frozenset()) -> set[str]:
    """Package modules (dotted below `polypersona_utils`, e.g. `panel.report`) that a piece of code imports when
    imported or run in a notebook, lazy imports inside functions included. `module` is the importing module's name,
    from which relative imports are resolved; `from package import name` counts `package.name` when that is one of
    the `known` modules, else the package."""
    package = module.split(".")[:-1]
    found = set()

    def add(base: list[str], names: list[str]) -> None:
        for name in names:
            dotted = ".".join(base + [name])
            found.add(dotted if dotted in known else ".".join(base))

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                target = package[:len(package) - node.level + 1] + (node.module.split(".") if node.module else [])
            elif (node.module or "").split(".")[0] == "polypersona_utils":
                target = node.module.split(".")[1:]
            else:
                continue
            add(target, [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".", 1)[1] for a in node.names if a.name.startswith("polypersona_utils.")}
    return {m for m in found if m} - {module}


def package_modules() -> dict[str, Path]:
    """Every module of the package by dotted name (the packages' `__init__` files hold only their docstring)."""
    return {module_name(path): path for path in sorted(paths.PACKAGE_DIR.rglob("*.py")) if path.stem != "__init__"}


def import_graph() -> dict[str, set[str]]:
    """Package module -> the package modules it imports."""
    modules = package_modules()
    return {name: module_imports(path.read_text(), name, set(modules)) & set(modules)
            for name, path in modules.items()}


def notebook_modules(notebook: str, graph: dict[str, set[str]]) -> list[str]:
    """Every package module `notebooks/<notebook>.ipynb` runs: what its cells import, and what those import."""
    cells = json.loads((paths.NOTEBOOKS_DIR / f"{notebook}.ipynb").read_text(encoding="utf-8"))["cells"]
    todo = set().union(*(module_imports("".join(c["source"]), known=set(graph)) for c in cells
                         if c["cell_type"] == "code"))
    seen: set[str] = set()
    while todo:
        module = todo.pop()
        if module in graph and module not in seen:
            seen.add(module)
            todo |= graph[module]
    return sorted(seen)


def sources_makefile(config: Config) -> str:
    """`<STEP>_SOURCES := polypersona_utils/x.py ...` per step: a step reruns when code it runs changes; and the
    profile's learning-curve runs (`LEARNING_CURVE_RUNS`)."""
    modules, graph = package_modules(), import_graph()
    lines = ["# Written by python -m polypersona_utils prepare: the package modules each step's notebook runs."]
    for step, notebook in STEP_NOTEBOOKS.items():
        files = " ".join(str(modules[m].relative_to(paths.PROJECT_ROOT)) for m in notebook_modules(notebook, graph))
        lines.append(f"{step.upper()}_SOURCES := {files}")
    lines.append(f"LEARNING_CURVE_RUNS := {' '.join(learning_curve_runs(config))}")
    lines.append(f"DATA_INPUTS := {' '.join(str(p) for p in user_inputs(config))}")
    lines.append(f"SURVEY_INPUTS := {' '.join(str(p) for p in survey_inputs(config))}")
    return "\n".join(lines) + "\n"


def survey_inputs(config: Config) -> list[Path]:
    """The question bank and the survey (its YAML, and its respondents file when it is a file): what the dataset,
    the metrics and the panel read about questions and real respondents."""

    survey = config.survey
    return [config.questions.bank_path, survey.spec_path] + ([survey.data_file] if survey.data_file else [])


def user_inputs(config: Config) -> list[Path]:
    """Files a user brings that the dataset is built from (imported records, a persona panel): notebook 01's
    prerequisites, so that editing one rebuilds the dataset. Relative paths are from the project root."""
    named = list(config.references.import_files().values()) if config.references.mode == "import" else []
    if config.personas.source == "file" and config.personas.path:
        named.append(config.personas.path)
    return [p if p.is_absolute() else paths.PROJECT_ROOT / p for p in map(Path, named)]


def prepare(profile: str, folder: Path) -> list[str]:
    """Refresh the stamps and the sources list under `folder`; returns the standard ablation runs. Each standard
    and learning-curve run also gets a stamp of its overrides (`runs/<name>.json`), so that a run defined
    differently in the code (`ablations.named_runs`) runs again."""
    config = load_config(profile)  # once: make runs this at every start
    for step, settings in step_settings(config).items():
        write_stamp(Path(folder) / f"{step}.json", settings)
    for run, overrides in named_runs(config).items():
        write_stamp(Path(folder) / "runs" / f"{run}.json", overrides)
    sources = Path(folder) / "sources.mk"
    text = sources_makefile(config)
    if not sources.exists() or sources.read_text(encoding="utf-8") != text:
        atomic_write_text(sources, text)
    return list(standard_ablations(config))
