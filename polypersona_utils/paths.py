"""Every location the study reads or writes, anchored on this package (no notebook writes a path string).

Profiles, artifacts and results live in the workspace: the checkout itself, unless `POLYPERSONA_WORKSPACE` names
another folder (the Makefile passes `WORKSPACE=...` on as that variable). The tests run the study in a temporary
workspace, so they never write into the checkout. Code, notebooks and the shared model cache stay in the checkout.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
WORKSPACE = Path(os.environ.get("POLYPERSONA_WORKSPACE") or PROJECT_ROOT).resolve()
PARAMS_DIR = WORKSPACE / "params"
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
RESULTS_ROOT = WORKSPACE / "results"
ARTIFACTS_ROOT = WORKSPACE / "artifacts"
PACKAGE_DATA_DIR = PACKAGE_DIR / "data"
QUESTION_BANK = PACKAGE_DATA_DIR / "question_bank.yaml"
# Materialised models are shared by all profiles: converting the GGUF once is the slow part.
MODEL_CACHE_DIR = PROJECT_ROOT / ".cache" / "models"


class WrongCheckoutError(RuntimeError):
    """The package imported is another clone's (a `.venv` reused across clones): outputs would land there."""


def check_checkout(folder: Path) -> None:
    """Stop when `folder` (where make or a notebook runs) belongs to a different clone than the imported package:
    an editable install is bound to the clone that made it."""
    folder = Path(folder).resolve()
    clone = next((p for p in [folder, *folder.parents] if (p / "polypersona_utils" / "paths.py").exists()), None)
    if clone is not None and clone != PROJECT_ROOT:
        raise WrongCheckoutError(
            f"this is the checkout {clone}, but Python imports polypersona_utils from {PROJECT_ROOT} (a .venv made "
            f"in another clone); results would be written there. Make a .venv in this clone: rm -rf .venv && "
            f"make install")


def params_file(profile: str) -> Path:
    """`params/<profile>.yaml`; a path to an existing YAML file is accepted as is."""
    candidate = Path(profile)
    if candidate.suffix in {".yaml", ".yml"}:
        return candidate.resolve()
    return PARAMS_DIR / f"{profile}.yaml"


def artifacts_dir(profile: str) -> Path:
    return ARTIFACTS_ROOT / profile


def data_dir(profile: str) -> Path:
    return artifacts_dir(profile) / "data"


def cache_dir(profile: str) -> Path:
    return artifacts_dir(profile) / "cache"


def results_dir(profile: str) -> Path:
    return RESULTS_ROOT / profile


def tables_dir(profile: str) -> Path:
    return results_dir(profile) / "tables"


def figures_dir(profile: str) -> Path:
    return results_dir(profile) / "figures"


@dataclass(frozen=True)
class RunPaths:
    """Where one run of a profile reads and writes: the main run (`run=""`) or an ablation run, evaluated on one
    split. Data and caches are the profile's, shared by its runs; a run's own outputs go under `runs/<run>/`, and a
    split other than test writes under `splits/<split>/`, so evaluating `val` never overwrites the test outputs."""

    profile: str
    run: str = ""
    split: str = "test"

    @property
    def name(self) -> str:
        """How the run is named in messages and titles: `default`, `default/runs/rank8`, `default (val)`."""
        name = f"{self.profile}/runs/{self.run}" if self.run else self.profile
        return name if self.split == "test" else f"{name} ({self.split})"

    def _own(self, root: Path) -> Path:
        return root / self.profile / "runs" / self.run if self.run else root / self.profile

    def _split(self, folder: Path) -> Path:
        return folder if self.split == "test" else folder / "splits" / self.split

    @property
    def data(self) -> Path:
        return data_dir(self.profile)

    @property
    def cache(self) -> Path:
        return cache_dir(self.profile)

    @property
    def artifacts(self) -> Path:
        """The run's own artifacts (adapters, predictions, the synthetic panel)."""
        return self._own(ARTIFACTS_ROOT)

    @property
    def adapters(self) -> Path:
        return self.artifacts / "adapters"

    @property
    def predictions(self) -> Path:
        return self._split(self._own(ARTIFACTS_ROOT) / "predictions")

    @property
    def results(self) -> Path:
        return self._split(self._own(RESULTS_ROOT))

    @property
    def tables(self) -> Path:
        return self.results / "tables"

    @property
    def figures(self) -> Path:
        return self.results / "figures"

    @property
    def training_results(self) -> Path:
        """The run's training metrics and loss figures (training does not depend on the evaluated split)."""
        return self._own(RESULTS_ROOT)

    @property
    def executed(self) -> Path:
        """The run's notebooks as papermill ran them (the Makefile's EXECUTED, or RUNS_DIR/<run>/executed)."""
        return self._own(RESULTS_ROOT) / "executed"
