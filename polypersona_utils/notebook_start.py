"""What every notebook does first: check that it runs against this checkout's package, show progress logging
(INFO: "N already done" on a resumed run), and load the run's configuration from its papermill parameters."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from . import paths
from .config import Config, load_run


def start_notebook(profile: str, run: str = "", overrides: str | dict = "{}") -> Config:
    """The run's configuration from the plain values of a notebook's parameters cell."""
    paths.check_checkout(Path.cwd())
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", force=True)
    changes = json.loads(overrides) if isinstance(overrides, str) else dict(overrides)
    return load_run(profile, run, changes)
