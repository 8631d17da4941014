"""Bootstrap intervals that resample personas (the unit that was sampled), with a named seed, and paired
differences on the same records."""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pandas as pd

MIN_PERSONAS_FOR_INTERVALS = 10  # fewer resampled personas give intervals too coarse to read


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
    return spanning(float(values.mean()), float(np.percentile(means, tail)), float(np.percentile(means, 100 - tail)))


def spanning(estimate: float, low: float, high: float) -> tuple[float, float, float]:
    """(estimate, low, high) with an end that misses the estimate by float rounding alone (a constant's mean
    summed in another order: 1e-16 apart) moved onto it; a real miss is left as it is."""
    rounding = 1e-12 * max(1.0, abs(estimate))
    if estimate < low <= estimate + rounding:
        low = estimate
    if estimate - rounding <= high < estimate:
        high = estimate
    return estimate, low, high



def with_intervals(frame: pd.DataFrame, columns, resamples_of) -> pd.DataFrame:
    """Per variant: mean, lower and upper 95 % bootstrap bound of each column."""
    rows = []
    for variant, part in frame.groupby("variant", sort=False):
        resamples = resamples_of(part)
        row = {"variant": variant, "n": len(part), "personas": part.persona_id.nunique()}
        for column in columns:
            mean, low, high = mean_with_interval(part[column].to_numpy(float), resamples)
            row.update({column: mean, f"{column}_low": low, f"{column}_high": high})
        rows.append(row)
    # The same columns when there is nothing to summarise (a run whose test records hold no open answer).
    return pd.DataFrame(rows, columns=["variant", "n", "personas",
                                       *(f"{c}{s}" for c in columns for s in ("", "_low", "_high"))])


def paired_differences(frame: pd.DataFrame, columns, seed: int, n_samples: int, better: str, worse: str
                       ) -> pd.DataFrame:
    """`better` minus `worse` on the same records, personas resampled jointly (paired bootstrap)."""
    a = frame[frame.variant == better].set_index("id").sort_index()
    b = frame[frame.variant == worse].set_index("id").sort_index()
    resamples = persona_bootstrap_indices(list(a["persona_id"]), n_samples, seed)
    rows = []
    for column in columns:
        diff = a[column].to_numpy(float) - b[column].to_numpy(float)
        mean, low, high = mean_with_interval(diff, resamples)
        rows.append({"comparison": f"{better} - {worse}", "metric": column, "difference": mean,
                     "low": low, "high": high, "personas": a.persona_id.nunique()})
    return pd.DataFrame(rows)


class Interval(NamedTuple):
    """A bootstrap interval and the method that gave it (`bca_interval`)."""
    low: float
    high: float
    method: str


# The methods an `Interval` names, as the tables write them.
BCA = "BCa"
# BCa undefined (the estimate lies beyond every draw) or leaving out its estimate (a bias correction so large that
# the interval sits among the extreme draws): estimate +- z * the draws' standard deviation
NORMAL = "normal"
CONSTANT = "constant"  # every draw gives the same value: the interval is that value
NO_INTERVAL = "none"  # no draw gives a value (nor does the estimate): nothing to report


def bca_interval(statistic, n: int, replicates: np.ndarray, level: float = 0.95) -> Interval:
    """Bias-corrected and accelerated interval (scipy.stats.bootstrap, method BCa) of a statistic of `n`
    resampled units, on bootstrap draws made elsewhere (`replicates`: the statistic on each draw, so that every
    table and every paired difference uses the same draws). `statistic(weights)` takes a (k, n) matrix of how often
    each unit is counted and returns k values; scipy calls it on the leave-one-out samples for the acceleration.
    A percentile interval of a biased statistic (a correlation, a regression slope over subgroup cells) can exclude
    its own estimate; BCa corrects for that bias (`tests/test_stats.py` checks its coverage by simulation).

    Where BCa is undefined, a stated fallback, named in the result's `method`: when every draw gives the same value
    (a persona-blind panel's slope) the interval is that value (`constant`); when the estimate lies beyond every
    draw (a correlation of 0.95 over subgroup cells, which resampling can only attenuate, so the bias correction is
    infinite and scipy returns NaN), or where BCa's interval leaves out the estimate (nearly every draw on one side
    of it: the bias correction puts the interval among the extreme draws), the normal interval around the estimate
    with the draws' standard deviation (`normal`): it exists and contains its estimate."""
    import warnings
    from types import SimpleNamespace

    from scipy.stats import bootstrap, norm

    replicates = np.asarray(replicates, float)
    finite = replicates[np.isfinite(replicates)]
    if finite.size == 0:
        return Interval(float("nan"), float("nan"), NO_INTERVAL)
    if np.ptp(finite) == 0:  # spanning the estimate too, which may differ from the draws by float rounding
        estimate = float(np.asarray(statistic(np.ones((1, n))), float)[0])
        value = float(finite[0])
        ends = (value, value) if not np.isfinite(estimate) else (min(value, estimate), max(value, estimate))
        return Interval(*ends, CONSTANT)

    def on_indices(indices, axis=-1):
        indices = np.asarray(indices, int)
        flat = indices.reshape(-1, indices.shape[-1])
        weights = np.stack([np.bincount(row, minlength=n) for row in flat]).astype(float)
        return np.asarray(statistic(weights), float).reshape(indices.shape[:-1])

    with warnings.catch_warnings():  # a degenerate BCa warns, then gives NaN: handled below
        warnings.simplefilter("ignore")
        result = bootstrap((np.arange(n),), on_indices, n_resamples=0, vectorized=True, method="BCa",
                           confidence_level=level, bootstrap_result=SimpleNamespace(bootstrap_distribution=finite))
    low, high = float(result.confidence_interval.low), float(result.confidence_interval.high)
    estimate = float(np.asarray(statistic(np.ones((1, n))), float)[0])
    if np.isfinite(low) and np.isfinite(high) and low <= estimate <= high:
        return Interval(low, high, BCA)
    spread = norm.ppf(0.5 + level / 2) * float(np.std(finite, ddof=1))
    return Interval(estimate - spread, estimate + spread, NORMAL)
