"""What every CPU benchmark here prints last: one JSON object with the issue's fields and the machine."""
from __future__ import annotations

import os
import platform


def result(name: str, unit: str, baseline_per_s: float, project_per_s: float, **details) -> dict:
    import torch

    return {"name": name, "unit": unit, "baseline_per_s": baseline_per_s, "project_per_s": project_per_s,
            "ratio": project_per_s / baseline_per_s, **details,
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
                       f"torch {torch.__version__}"}
