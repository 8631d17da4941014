"""Does the model add anything beyond the card's fields? (`panel_stacking`)

For each model variant and each card-only regression (`baseline-logistic`, fitted on the run's training
respondents, and `anchor-logistic-all`, fitted on every eligible respondent outside the panel, where present), per
item a multinomial logistic regression (C = 1) predicts the real answer from the regression's option
log-probabilities alone ("without": a recalibration) or together with the model's ("with"). Both are cross-fitted on
the held-out panel itself (5 folds of respondents, seeded): each respondent's answers are predicted by a stacker
fitted on the other folds, so nothing is scored on what it was fitted on. The model's probabilities for the
training respondents would be in-sample (the model was trained on them), which is why the stacker is not fitted
there. The gain is the log-loss without minus with, per (respondent, item) pair, averaged; its interval a BCa
interval on respondent-bootstrap draws (the same draws as `panel_individual`). A gain whose interval lies above zero
says the model knows something about these people that the card's fields, as the regression uses them, do not.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..stats import bca_interval
from .measures import LOG_FLOOR, bootstrap_weights
from .references import model_variants

CARD_REGRESSIONS = ("baseline-logistic", "anchor-logistic-all")
FOLDS = 5
# The stackers are solved to their optimum (the penalised objective is strictly convex: it is unique) by Newton
# steps: a relative perturbation of 1e-12 in the inputs moves the losses by 1e-13, where lbfgs at sklearn's default
# tolerance (1e-4) stopped at points that moved by 7e-4 and differed between processors; Newton is also 4x faster
# here (`reporting.checks.ITERATIVE_FIT`, docs/reliability.md).
STACKER_TOL = 1e-10
SOLVER = "newton-cholesky"


def cross_fitted_loss(features: np.ndarray, y: np.ndarray, options: int, seed: int) -> np.ndarray:
    """Per row, -log p(real answer) under a logistic regression fitted on the other folds (K-fold, seeded)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import KFold

    loss = np.empty(len(y))
    for fit, held in KFold(n_splits=FOLDS, shuffle=True, random_state=seed).split(features):
        p = np.full((len(held), options), 1.0 / options)
        if len(set(y[fit])) > 1:
            model = LogisticRegression(C=1.0, tol=STACKER_TOL, max_iter=10_000, solver=SOLVER).fit(features[fit], y[fit])
            p = np.zeros((len(held), options))
            p[:, model.classes_] = model.predict_proba(features[held])
        loss[held] = -np.log(np.maximum(p[np.arange(len(held)), y[held]], LOG_FLOOR))
    return loss


def stacking_losses(frame: pd.DataFrame, model: str, regression: str, seed: int) -> tuple[list[str], dict]:
    """Per (respondent, item) pair of `model` and `regression` (both in `frame`, with `real_index`): its respondent
    and the log-loss of the regression as is, recalibrated without the model, and stacked with it (cross-fitted)."""
    both = frame[frame.variant.isin([model, regression])]
    wide = both.pivot_table(index=["persona_id", "question_id"], columns="variant", values="probabilities",
                            aggfunc="first").dropna()
    real = both.drop_duplicates(["persona_id", "question_id"]).set_index(["persona_id", "question_id"]).real_index
    losses = {"as_is": [], "without": [], "with": []}
    keys = []
    for qid in sorted(wide.index.get_level_values("question_id").unique()):
        part = wide.xs(qid, level="question_id")
        base = np.log(np.maximum(np.stack(part[regression].to_numpy()), LOG_FLOOR))
        extra = np.log(np.maximum(np.stack(part[model].to_numpy()), LOG_FLOOR))
        y = real.xs(qid, level="question_id").loc[part.index].to_numpy(int)
        losses["as_is"].append(-base[np.arange(len(y)), y])
        losses["without"].append(cross_fitted_loss(base, y, base.shape[1], seed))
        losses["with"].append(cross_fitted_loss(np.hstack([base, extra]), y, base.shape[1], seed))
        keys += list(part.index)
    return keys, {k: np.concatenate(v) for k, v in losses.items()}


def gain_statistic(keys: list[str], losses: dict, people: dict[str, int]):
    """statistic(weights (k, respondents)) -> (k,): the mean stacking gain, each respondent's pairs counted as
    often as the weights say (`people`: respondent -> column)."""
    index = np.array([people[p] for p in keys])
    gain = losses["without"] - losses["with"]

    def mean_gain(weights: np.ndarray) -> np.ndarray:
        w = weights[:, index]
        return w @ gain / w.sum(axis=1)
    return mean_gain


def stacked(frame: pd.DataFrame, seed: int) -> dict[tuple[str, str], tuple[list[str], dict]]:
    """(model variant, card regression) -> `stacking_losses`, for every model variant and every card regression the
    panel holds: the cross-fitted fits, made once for `panel_stacking` and `panel_models` alike."""
    present = list(dict.fromkeys(frame.variant))
    return {(model, regression): stacking_losses(frame, model, regression, seed)
            for model in model_variants(present) for regression in CARD_REGRESSIONS if regression in present}


def stacking_rows(model: str, regression: str, keys: list[str], losses: dict, samples: int, seed: int) -> dict:
    """One row of the table: `model` stacked on `regression`, from their `stacking_losses`."""
    people = {p: i for i, p in enumerate(sorted(set(keys)))}
    mean_gain = gain_statistic(keys, losses, people)
    gain = losses["without"] - losses["with"]
    low, high, method = bca_interval(mean_gain, len(people), mean_gain(bootstrap_weights(len(people), samples, seed)))
    return {"variant": model, "card_regression": regression, "respondents": len(people), "pairs": len(gain),
            "log_loss_regression": float(losses["as_is"].mean()), "log_loss_without": float(losses["without"].mean()),
            "log_loss_with": float(losses["with"].mean()), "gain": float(gain.mean()), "gain_lo": low,
            "gain_hi": high, "ci_method": method}


def panel_stacking(frame: pd.DataFrame, samples: int, seed: int, fits: dict | None = None) -> pd.DataFrame:
    """Every model variant on every card regression the panel holds (`frame` with `real_index`; `fits`: its
    `stacked(frame, seed)` when already made)."""
    fits = stacked(frame, seed) if fits is None else fits
    rows = [stacking_rows(model, regression, keys, losses, samples, seed)
            for (model, regression), (keys, losses) in fits.items()]
    return pd.DataFrame(rows, columns=["variant", "card_regression", "respondents", "pairs", "log_loss_regression",
                                       "log_loss_without", "log_loss_with", "gain", "gain_lo", "gain_hi", "ci_method"])
