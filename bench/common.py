"""What every CPU benchmark here prints last: one JSON object with the issue's fields and the machine."""
from __future__ import annotations

import os
import platform
import time


def result(name: str, unit: str, baseline_per_s: float, project_per_s: float, **details) -> dict:
    import torch

    return {"name": name, "unit": unit, "baseline_per_s": baseline_per_s, "project_per_s": project_per_s,
            "ratio": project_per_s / baseline_per_s, **details,
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
                       f"torch {torch.__version__}"}


def matmul_peak_gflops(dtype_name: str, size: int = 1024, repeats: int = 20) -> float:
    """This machine's matrix-multiply rate in `dtype_name` on square matrices: what utilisations are read against."""
    import torch

    dtype = getattr(torch, dtype_name)
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * size**3 * repeats / (time.perf_counter() - start) / 1e9
