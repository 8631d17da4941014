"""`panel_paired`: each model variant minus each reference on the same respondents and the same bootstrap draws
(log-loss and subgroup-effect slope, BCa intervals); the results README's verdict is read off it. A pure function
of the stored distributions, like every panel table."""
from __future__ import annotations

import numpy as np
import pandas as pd

from .panel_evaluation import LOG_FLOOR, bootstrap_weights, effect_statistic
from .stats import bca_interval


def pair_loss_statistic(answers: pd.DataFrame, people: dict[str, int]):
    """statistic(weights (k, respondents)) -> (k,): the mean log-loss of the real answers, each respondent's pairs
    counted as often as the weights say."""
    real_p = np.array([p[o] for p, o in zip(answers.probabilities, answers.real_index)])
    loss = -np.log(np.maximum(real_p, LOG_FLOOR))
    index = np.array([people[p] for p in answers.persona_id])

    def statistic(weights: np.ndarray) -> np.ndarray:
        w = weights[:, index]
        return w @ loss / w.sum(axis=1)
    return statistic


def panel_paired(frame: pd.DataFrame, samples: int, seed: int, min_respondents: int, variables: tuple[str, ...],
                 real_effects: dict, models: list[str], references: list[str]) -> pd.DataFrame:
    """Each model variant minus each reference on the same respondents and the same bootstrap draws: log-loss
    (negative: the model predicts the real answers better) and subgroup-effect slope (positive: the model's
    subgroups differ more, as the real ones do), with BCa intervals."""
    people = {p: i for i, p in enumerate(sorted(frame.persona_id.unique()))}
    weights = bootstrap_weights(len(people), samples, seed)
    ones = np.ones((1, len(people)))
    by_variant = {v: part.reset_index(drop=True) for v, part in frame.groupby("variant", sort=False)}
    statistics = {}
    for variant in models + references:
        answers = by_variant[variant]
        if set(answers.persona_id) != set(people):
            raise ValueError(f"panel_paired: variant {variant} does not cover the panel's respondents")
        slope = effect_statistic(answers, min_respondents, variables, real_effects)
        statistics[variant] = {"log_loss": pair_loss_statistic(answers, people),
                               "subgroup_effect_slope": lambda w, slope=slope: slope(w)[:, 1]}
    rows = []
    for model in models:
        for reference in references:
            for measure in ("log_loss", "subgroup_effect_slope"):
                a, b = statistics[model][measure], statistics[reference][measure]
                difference = lambda w, a=a, b=b: a(w) - b(w)  # noqa: E731
                low, high = bca_interval(difference, len(people), difference(weights))
                rows.append({"variant": model, "reference": reference, "measure": measure,
                             "difference": float(difference(ones)[0]), "difference_lo": low, "difference_hi": high})
    return pd.DataFrame(rows, columns=["variant", "reference", "measure", "difference", "difference_lo",
                                       "difference_hi"])
