"""Bootstrap intervals that resample personas (the unit that was sampled), with a named seed."""
from __future__ import annotations

import numpy as np


def persona_bootstrap_indices(persona_ids: list[str], n_samples: int, seed: int) -> list[np.ndarray]:
    """Row indices of `n_samples` resamples: personas drawn with replacement, each bringing all its rows."""
    personas = sorted(set(persona_ids))
    rows_of = {p: np.flatnonzero(np.array(persona_ids) == p) for p in personas}
    rng = np.random.default_rng(seed)
    return [np.concatenate([rows_of[personas[i]] for i in rng.integers(0, len(personas), len(personas))])
            for _ in range(n_samples)]


def mean_with_interval(values: np.ndarray, resamples: list[np.ndarray], level: float = 0.95) -> tuple[float, float, float]:
    """Mean and percentile bootstrap interval of the mean."""
    values = np.asarray(values, float)
    means = np.array([values[idx].mean() for idx in resamples])
    tail = (1 - level) / 2 * 100
    return float(values.mean()), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail))
