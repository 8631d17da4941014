"""Every location the study reads or writes, anchored on this package (no notebook writes a path string)."""
from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
PROJECT_ROOT = PACKAGE_DIR.parent
PARAMS_DIR = PROJECT_ROOT / "params"
NOTEBOOKS_DIR = PROJECT_ROOT / "notebooks"
RESULTS_ROOT = PROJECT_ROOT / "results"
ARTIFACTS_ROOT = PROJECT_ROOT / "artifacts"
PACKAGE_DATA_DIR = PACKAGE_DIR / "data"
QUESTION_BANK = PACKAGE_DATA_DIR / "question_bank.yaml"
# Materialised models are shared by all profiles: converting the GGUF once is the slow part.
MODEL_CACHE_DIR = PROJECT_ROOT / ".cache" / "models"


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


def executed_dir(profile: str) -> Path:
    return results_dir(profile) / "executed"


def adapters_dir(profile: str) -> Path:
    return artifacts_dir(profile) / "adapters"


def predictions_dir(profile: str) -> Path:
    return artifacts_dir(profile) / "predictions"
