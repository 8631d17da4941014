"""What a synthetic panel is worth in real respondents (`panel_worth`): prediction-powered estimates of answer shares
measured on the held-out panel.

Setting. The held-out panel's respondents are the population (a finite pool; the shipped GSS extract has no weights,
so every share is unweighted). A researcher has a predictor's option probabilities for every card of the pool and
the real answers of a simple random sample of n of its respondents, drawn without replacement (`seeds.worth`,
`panel.worth.draws` samples per n). The estimands are, for each linked item and option, the share of that option
among the pool's respondents who answered the item, overall and in each subgroup cell with at least
`panel.worth.min_cell` of them; a cell enters at a given n when its expected number of sampled members
(n x cell / pool) is at least `panel.worth.min_expected`, and an option when its expected count among them, and
the other options', reach `panel.worth.min_expected_answers` (the textbook np >= 5 for a normal-approximation
interval; coverage over every option is reported beside it). The estimators are `panel.estimates`'s: classical,
synthetic only, prediction-powered (PPI++ for a finite pool). With `panel.worth.control`, a control predictor,
`shuffled-<first predictor>`, holds the first predictor's probabilities shuffled among each cell's respondents:
related to no one's answer, it is worth 100 per 100 in truth, and the little more it shows (lam fitted on the same
sample makes the rectifier's variance look smaller than it is) is the floor a real gain must clear.

`worth_draws` computes every estimator on every draw at once; `tests/test_panel_worth.py` checks it against the
ppi_py path (`panel.estimates`) draw by draw and checks coverage on simulated pools. The effective sample size of
a predictor at n is the classical sample size whose interval would be as wide as the prediction-powered one: with
r = (mean ppi width / mean classical width)^2 over a draw's estimands, 1 / n_eff = r (1/n - 1/P) + 1/P for a pool
of P respondents (so n_eff is at most P, a census).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import norm

from .estimates import ESTIMATORS, LEVEL, finite_correction
from .references import model_variants


def worth_draws(sampled: np.ndarray, answers: np.ndarray, predictions: np.ndarray, level: float = LEVEL
                ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every estimator on every draw at once. `sampled` (draws, N) marks each draw's sampled members of one cell,
    `answers` (N, K) its members' real answers one-hot, `predictions` (N, K) a predictor's probabilities. Returns
    estimator -> (estimates, half-widths), each (draws, K); classical and ppi rows with fewer than 2 sampled members
    are NaN (synthetic uses no sample). Equal
    to `classical_estimate`, `synthetic_estimate` and `ppi_estimate` on each draw (tests/test_panel_worth.py)."""
    z = norm.ppf(0.5 + level / 2)
    w = sampled.astype(float)
    pool = len(answers)
    m = w.sum(axis=1, keepdims=True)
    m_safe = np.maximum(m, 1)
    mean_y, mean_f = w @ answers / m_safe, w @ predictions / m_safe
    mean_ff, mean_yf = w @ predictions ** 2 / m_safe, w @ (answers * predictions) / m_safe
    fpc = finite_correction(m, pool)
    var_y = np.clip(mean_y - mean_y ** 2, 0, None)  # answers are 0 or 1, so mean(y^2) = mean(y)
    var_f = mean_ff - mean_f ** 2
    cov = mean_yf - mean_y * mean_f
    lam = np.where(var_f > 1e-12, np.clip(cov / np.where(var_f > 1e-12, var_f, 1), 0, 1), 0.0)
    rectifier = mean_y - lam * mean_f
    var_rectifier = np.clip(mean_y - 2 * lam * mean_yf + lam ** 2 * mean_ff - rectifier ** 2, 0, None)
    too_few = np.where(m < 2, np.nan, 1.0)
    draws = len(w)
    synthetic = np.broadcast_to(predictions.mean(axis=0), (draws, answers.shape[1]))
    synthetic_half = np.broadcast_to(z * predictions.std(axis=0) / np.sqrt(pool), synthetic.shape)
    return {"classical": (mean_y * too_few, z * np.sqrt(var_y / m_safe) * fpc * too_few),
            "synthetic": (synthetic, synthetic_half),
            "ppi": ((lam * predictions.mean(axis=0) + rectifier) * too_few,
                    z * np.sqrt(var_rectifier / m_safe) * fpc * too_few)}


@dataclass(frozen=True)
class Cell:
    """One item's answers and one predictor's probabilities for the pool members of a subgroup cell."""
    question_id: str
    variable: str
    category: str
    members: np.ndarray  # indices into the pool's respondents
    answers: np.ndarray  # (N, K) one-hot
    options: tuple[str, ...]


def pool_cells(frame: pd.DataFrame, variables: tuple[str, ...], min_cell: int) -> tuple[list[str], list[Cell]]:
    """(the pool's respondents, every item x subgroup cell with at least `min_cell` of them; `all` first) from one
    variant's rows of the panel frame (with `real_onehot`)."""
    people = sorted(frame.persona_id.unique())
    index = {p: i for i, p in enumerate(people)}
    cells = []
    for qid, on_item in frame.groupby("question_id", sort=True):
        on_item = on_item.sort_values("persona_id")
        groups = [("all", "all", np.ones(len(on_item), bool))] + [
            (variable, str(category), (on_item[variable] == category).to_numpy())
            for variable in variables for category in sorted(on_item[variable].unique())]
        for variable, category, inside in groups:
            if inside.sum() >= min_cell:
                part = on_item[inside]
                cells.append(Cell(qid, variable, category, np.array([index[p] for p in part.persona_id]),
                                  np.stack(part.real_onehot.to_numpy()), tuple(part.options.iloc[0])))
    return people, cells


def predictions_of(frame: pd.DataFrame, variant: str, cells: list[Cell], people: list[str]) -> list[np.ndarray]:
    """Per cell, `variant`'s (N, K) probabilities for the cell's members, in the cell's order."""
    rows = frame[frame.variant == variant]
    by_pair = dict(zip(zip(rows.persona_id, rows.question_id), rows.probabilities))
    missing = [(people[i], c.question_id) for c in cells for i in c.members if (people[i], c.question_id) not in by_pair]
    if missing:
        raise ValueError(f"panel_worth: variant '{variant}' has no probabilities for {len(missing)} "
                         f"(respondent, item) pairs of the pool, e.g. {missing[0]}")
    return [np.stack([by_pair[people[i], c.question_id] for i in c.members]) for c in cells]


def sample_draws(pool: int, n: int, draws: int, seed: int) -> np.ndarray:
    """(draws, pool) booleans: `draws` simple random samples of n of the pool's respondents, seeded per n (so adding
    a sample size leaves the others' draws alone)."""
    rng = np.random.default_rng([seed, n])
    out = np.zeros((draws, pool), bool)
    for d in range(draws):
        out[d, rng.choice(pool, size=n, replace=False)] = True
    return out


def effective_size(ppi_width: np.ndarray, classical_width: np.ndarray, n: int, pool: int) -> np.ndarray:
    """Per draw, the classical sample size whose interval is as wide as the prediction-powered one (see module)."""
    ratio = (ppi_width / classical_width) ** 2
    return 1 / (ratio * (1 / n - 1 / pool) + 1 / pool)


def worth_predictors(variants, references) -> list[str]:
    """Every model variant, then the named references that the run has."""
    present = list(dict.fromkeys(variants))
    return model_variants(present) + [r for r in references if r in present]


def worth_cells(frame: pd.DataFrame, predictors: list[str], variables: tuple[str, ...], settings, seed: int
                ) -> tuple[pd.DataFrame, int]:
    """(one row per predictor, n and estimator holding (draws, options) arrays `covered`, `width` and `error` over
    every option of the cells that enter at n, and `kept`, the options that are estimands; the pool's size)."""
    people, cells = pool_cells(frame[frame.variant == predictors[0]], variables, settings.min_cell)
    pool = len(people)
    too_large = [n for n in settings.sample_sizes if n >= pool]
    if too_large:
        raise ValueError(f"panel.worth.sample_sizes: {too_large} not below the panel's {pool} respondents")
    predictions = {p: predictions_of(frame, p, cells, people) for p in predictors}
    if settings.control:
        rng = np.random.default_rng([seed, 0])
        predictions[f"shuffled-{predictors[0]}"] = [f[rng.permutation(len(f))] for f in predictions[predictors[0]]]
    rows = []
    for n in settings.sample_sizes:
        sampled = sample_draws(pool, n, settings.draws, seed)
        entering = [i for i, c in enumerate(cells) if n * len(c.members) / pool >= settings.min_expected]
        if not entering:
            raise ValueError(f"panel.worth: at n = {n} no cell has {settings.min_expected:g} expected sampled members "
                             f"(the panel has {pool} respondents): raise the sample size or lower min_expected")
        truths = [cells[i].answers.mean(axis=0) for i in entering]
        expected = [n * len(cells[i].members) / pool for i in entering]
        kept = np.concatenate([(e * t >= settings.min_expected_answers) & (e * (1 - t) >= settings.min_expected_answers)
                               for e, t in zip(expected, truths)])
        for predictor in predictions:
            found = {e: {"covered": [], "width": [], "error": []} for e in ESTIMATORS}
            for i, truth in zip(entering, truths):
                cell = cells[i]
                for estimator, (estimate, half) in worth_draws(sampled[:, cell.members], cell.answers,
                                                               predictions[predictor][i]).items():
                    found[estimator]["covered"].append(np.abs(estimate - truth) <= half)
                    found[estimator]["width"].append(2 * half)
                    found[estimator]["error"].append(estimate - truth)
            for estimator, arrays in found.items():
                rows.append({"predictor": predictor, "n": n, "estimator": estimator, "kept": kept,
                             **{k: np.concatenate(v, axis=1) for k, v in arrays.items()}})
    return pd.DataFrame(rows), pool


def panel_worth(frame: pd.DataFrame, predictors: list[str], variables: tuple[str, ...], settings, seed: int
                ) -> pd.DataFrame:
    """The `panel_worth` table from the panel frame (with `real_onehot`; `settings`: `panel.worth`): per predictor,
    n and estimator, over the draws and the estimands: coverage (mean share of estimands whose interval holds the
    truth; `_sd` its spread over draws), `coverage_all_options` (the same over every option of the entering cells,
    rare ones included: where the normal approximation is known to fail), interval width, bias (mean over
    estimands of |mean error over draws|, in share units), `error_sd` (mean over estimands of the estimate's spread
    over draws), and `effective_n` (`effective_size`; classical: n itself; synthetic, which uses no real answer:
    none) with its spread over draws, and `worth_per_100` = 100 x effective_n / n. An unbiased estimator's `bias`
    is not 0 but about 0.8 x error_sd / sqrt(draws), the noise of a mean's absolute value."""
    raw, pool = worth_cells(frame, predictors, variables, settings, seed)
    rows = []
    for (predictor, n), part in raw.groupby(["predictor", "n"], sort=False):
        by_estimator = part.set_index("estimator")
        kept = by_estimator.loc["classical", "kept"]
        classical_width = np.nanmean(by_estimator.loc["classical", "width"][:, kept], axis=1)
        for estimator in ESTIMATORS:
            covered, width, error = (by_estimator.loc[estimator, c] for c in ("covered", "width", "error"))
            coverage_all = np.nanmean(np.where(np.isfinite(width), covered, np.nan), axis=1)
            covered, width, error = covered[:, kept], width[:, kept], error[:, kept]
            coverage = np.nanmean(np.where(np.isfinite(width), covered, np.nan), axis=1)
            mean_width = np.nanmean(width, axis=1)
            effective = (np.full(len(width), float(n)) if estimator == "classical" else
                         effective_size(mean_width, classical_width, n, pool) if estimator == "ppi"
                         else np.full(len(width), np.nan))
            rows.append({"predictor": predictor, "n": n, "estimator": estimator, "estimands": int(kept.sum()),
                         "coverage": float(np.mean(coverage)), "coverage_sd": float(np.std(coverage)),
                         "coverage_all_options": float(np.mean(coverage_all)),
                         "width": float(np.mean(mean_width)), "width_sd": float(np.std(mean_width)),
                         "bias": float(np.mean(np.abs(np.nanmean(error, axis=0)))),
                         "error_sd": float(np.mean(np.nanstd(error, axis=0))),
                         "effective_n": float(np.mean(effective)), "effective_n_sd": float(np.std(effective)),
                         "worth_per_100": float(100 * np.mean(effective) / n)})
    return pd.DataFrame(rows)


