"""Prediction-powered estimates of answer shares from a predictor's probabilities for every card of a pool and the
real answers of a simple random sample of it, through the reference implementation, `ppi_py` (pinned).

Estimators, each with an interval; m is the number of a cell's N respondents who were sampled:
- `classical`: the sample share, ppi_py's `classical_mean_ci`, its half-width times the finite-population
  correction sqrt((N - m) / (N - 1)).
- `synthetic`: the predictor's mean probability over the cell's N cards, with ppi_py's `classical_mean_ci` over
  those probabilities: what a user of the synthetic panel alone would report. No real answer enters.
- `ppi`: prediction-powered (PPI++): lam x mean of the N predictions + mean over the m sampled of (answer -
  lam x prediction), by ppi_py's `ppi_mean_pointestimate` and `ppi_mean_ci`. Two things differ from ppi_py's
  defaults, because the pool is the population: the predictions of every card are known, so their mean has no
  sampling error (ppi_py's "imputed" variance, which treats them as a sample from a larger population, is zero) and
  the rectifier's variance carries the finite-population correction; and lam is tuned for that variance,
  cov(answer, prediction) / var(prediction) over the sample, clipped to [0, 1] (PPI++'s criterion; ppi_py's own lam
  divides by a further (1 + m / N), the imputed term's share). Without the correction, at n = 200 of 300 the
  intervals would be about 1.7 times too wide and cover nearly always.

`make panel-estimates PREDICTIONS=... ANSWERS=... OUT=...` runs `main` on a user's files; `panel_worth` measures
these estimators on the held-out panel.
"""
from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ..user_files import read_csv_rows
from .files import read_panel_file

ESTIMATORS = ("classical", "synthetic", "ppi")
LEVEL = 0.95
MIN_ANSWERS = 5  # answers with the option, and without it, a normal-approximation interval needs


def ppi_py():
    """The reference implementation. Importing it sets a global 'ignore all warnings' filter; this keeps the
    caller's filters as they were."""
    with warnings.catch_warnings():
        import ppi_py as module
    return module


def finite_correction(sampled, pool) -> np.ndarray:
    sampled, pool = np.asarray(sampled, float), np.asarray(pool, float)
    return np.sqrt(np.clip((pool - sampled) / np.maximum(pool - 1, 1), 0, None))


def power_tuning(answers: np.ndarray, predictions: np.ndarray) -> float:
    """PPI++'s lam for a finite pool whose predictions are all known: the slope of the answers on the predictions
    over the sample, clipped to [0, 1]; 0 (the classical estimate) when the predictions do not vary."""
    spread = predictions.var()
    if spread <= 1e-12:  # float noise: the predictions do not vary (worth_draws uses the same threshold)
        return 0.0
    slope = ((answers - answers.mean()) * (predictions - predictions.mean())).mean() / spread
    return float(np.clip(slope, 0.0, 1.0))


def ppi_estimate(answers, sampled_predictions, pool_predictions, level: float = LEVEL) -> tuple[float, float, float]:
    """(estimate, low, high) of the pool's mean answer from a sample's answers and every card's prediction
    (the sample's among them), by ppi_py with lam = `power_tuning` and the finite-population correction."""
    y, f, pool = (np.asarray(a, float) for a in (answers, sampled_predictions, pool_predictions))
    lam = power_tuning(y, f)
    ppi = ppi_py()
    estimate = float(np.ravel(ppi.ppi_mean_pointestimate(y, f, pool, lam=lam))[0])
    # The pool's mean prediction is known exactly: given as a constant, ppi_py's imputed variance is zero.
    low, high = ppi.ppi_mean_ci(y, f, np.full(len(pool), pool.mean()), alpha=1 - level, lam=lam)
    half = (float(np.ravel(high)[0]) - float(np.ravel(low)[0])) / 2 * finite_correction(len(y), len(pool))
    return estimate, estimate - half, estimate + half


def classical_estimate(answers, pool_size: int, level: float = LEVEL) -> tuple[float, float, float]:
    """(sample mean, low, high) by ppi_py's `classical_mean_ci`, with the finite-population correction."""
    y = np.asarray(answers, float)
    low, high = ppi_py().classical_mean_ci(y, alpha=1 - level)
    half = (float(np.ravel(high)[0]) - float(np.ravel(low)[0])) / 2 * finite_correction(len(y), pool_size)
    return float(y.mean()), float(y.mean() - half), float(y.mean() + half)


def synthetic_estimate(pool_predictions, level: float = LEVEL) -> tuple[float, float, float]:
    """(mean prediction, low, high): the synthetic panel alone, `classical_mean_ci` over its probabilities."""
    f = np.asarray(pool_predictions, float)
    low, high = ppi_py().classical_mean_ci(f, alpha=1 - level)
    return float(f.mean()), float(np.ravel(low)[0]), float(np.ravel(high)[0])


# A user's own case: predictions for every card of a pool, real answers for a sample of it.
ANSWER_COLUMNS = ("persona_id", "question_id", "real_option")


def read_predictions(path: Path) -> pd.DataFrame:
    """A panel-format file (`panel.files`; as `results/<profile>/panel_distributions.csv`, one predictor's rows)
    for every card of the pool, with any subgroup columns. Bad rows raise ValueError naming the file, line and
    field."""
    frame = read_panel_file(path)
    if "variant" in frame.columns and frame.variant.nunique() > 1:
        raise ValueError(f"{path}: field 'variant': {frame.variant.nunique()} variants; give one predictor's rows")
    first = {}
    for row in frame.itertuples(index=False):
        expected = first.setdefault(row.question_id, (row.options, row.line))
        if row.options != expected[0]:
            raise ValueError(f"{path}: line {row.line}: field 'options': {list(row.options)} differ from line "
                             f"{expected[1]}'s {list(expected[0])} for question {row.question_id}")
    frame["probabilities"] = [np.array(p) for p in frame.probabilities]
    return frame


def read_answers(path: Path, predictions: pd.DataFrame, predictions_path: Path) -> pd.DataFrame:
    """A CSV of real answers (`persona_id`, `question_id`, `real_option`) for a sample of the pool; every pair must
    have a prediction, once, and every answer must be one of its options."""
    options = dict(zip(zip(predictions.persona_id, predictions.question_id), predictions.options))
    rows, seen = [], {}
    for line, row in read_csv_rows(path, ANSWER_COLUMNS):
        pair = (row["persona_id"], row["question_id"])
        if pair not in options:
            raise ValueError(f"{path}: line {line}: fields 'persona_id', 'question_id': {pair} has no prediction in "
                             f"{predictions_path} (the sample must be part of the predicted pool)")
        if row["real_option"] not in options[pair]:
            raise ValueError(f"{path}: line {line}: field 'real_option': {row['real_option']!r} is not one of "
                             f"{list(options[pair])}")
        if pair in seen:
            raise ValueError(f"{path}: line {line}: fields 'persona_id', 'question_id': {pair} is also on line "
                             f"{seen[pair]}")
        seen[pair] = line
        rows.append({column: row[column] for column in ANSWER_COLUMNS})
    return pd.DataFrame(rows, columns=list(ANSWER_COLUMNS))


def estimate_shares(predictions: pd.DataFrame, answers: pd.DataFrame, variables: tuple[str, ...],
                    level: float = LEVEL) -> pd.DataFrame:
    """Per item, subgroup cell (`all` and each category of `variables`) and option: the classical, synthetic-only
    and prediction-powered estimates of the option's share among the pool's respondents, each with its interval,
    through ppi_py (`classical_estimate`, `synthetic_estimate`, `ppi_estimate`). `pool` is the cell's predicted
    respondents, `sampled` those with a real answer; cells with fewer than 2 sampled are listed with no estimate.
    The intervals assume the answered respondents are a simple random sample of the pool, and are normal
    approximations: `normal_ok` is False where the sample holds fewer than 5 answers with the option or 5 without
    it (the textbook condition; `panel_worth` measures coverage only where it holds), and those intervals are too
    narrow (of width 0 when every sampled answer agrees)."""
    real = dict(zip(zip(answers.persona_id, answers.question_id), answers.real_option))
    rows = []
    for qid, on_item in predictions.groupby("question_id", sort=True):
        groups = [("all", "all", on_item)] + [(v, str(c), part) for v in variables
                                              for c, part in on_item.groupby(v, sort=True)]
        for variable, category, part in groups:
            options = part.options.iloc[0]
            f = np.stack(part.probabilities.to_numpy())
            sampled = np.array([(p, qid) in real for p in part.persona_id])
            y = np.array([[real[p, qid] == o for o in options] for p in part.persona_id[sampled]], float)
            for k, option in enumerate(options):
                base = {"question_id": qid, "variable": variable, "category": category, "option": option,
                        "pool": len(part), "sampled": int(sampled.sum())}
                found = {"synthetic": synthetic_estimate(f[:, k], level)}
                if sampled.sum() >= 2:
                    found["classical"] = classical_estimate(y[:, k], len(part), level)
                    found["ppi"] = ppi_estimate(y[:, k], f[sampled, k], f[:, k], level)
                chosen = float(y[:, k].sum()) if sampled.any() else 0.0
                normal_ok = chosen >= MIN_ANSWERS and sampled.sum() - chosen >= MIN_ANSWERS
                for estimator in ESTIMATORS:
                    estimate, low, high = found.get(estimator, (np.nan, np.nan, np.nan))
                    rows.append({**base, "estimator": estimator, "estimate": estimate, "low": low, "high": high,
                                 "normal_ok": bool(normal_ok) if estimator != "synthetic" else True})
    return pd.DataFrame(rows)
