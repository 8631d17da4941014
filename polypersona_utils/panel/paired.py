"""Paired differences on the same respondents and the same bootstrap draws, BCa intervals; the results README's
verdict is read off them. `panel_paired`: each model variant minus each reference (log-loss and subgroup-effect
slope). `panel_models`: where the study has more than one model family, each family's variant minus the first
family's of the same kind (`-zeroshot`, `-lora`), on log-loss, subgroup-effect slope and the stacking gain over each
card regression. Pure functions of the stored distributions, like every panel table."""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..stats import bca_interval
from .measures import LOG_FLOOR, bootstrap_weights, effect_statistic
from .stacking import CARD_REGRESSIONS, gain_statistic, stacked

COLUMNS = ["variant", "reference", "measure", "difference", "difference_lo", "difference_hi", "ci_method"]


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
    statistics = variant_statistics(frame, models + references, people, min_respondents, variables, real_effects)
    pairs = [(model, reference, measure) for model in models for reference in references
             for measure in ("log_loss", "subgroup_effect_slope")]
    return paired_rows(statistics, pairs, people, samples, seed)


def variant_statistics(frame: pd.DataFrame, variants: list[str], people: dict[str, int], min_respondents: int,
                       variables: tuple[str, ...], real_effects: dict) -> dict[str, dict]:
    """Per variant, measure -> statistic(weights) on the respondents `people`, which every variant must cover."""
    by_variant = {v: part.reset_index(drop=True) for v, part in frame.groupby("variant", sort=False)}
    statistics = {}
    for variant in variants:
        answers = by_variant[variant]
        if set(answers.persona_id) != set(people):
            raise ValueError(f"panel_paired: variant {variant} does not cover the panel's respondents")
        slope = effect_statistic(answers, min_respondents, variables, real_effects)
        statistics[variant] = {"log_loss": pair_loss_statistic(answers, people),
                               "subgroup_effect_slope": lambda w, slope=slope: slope(w)[:, 1]}
    return statistics


def paired_rows(statistics: dict[str, dict], pairs: list[tuple[str, str, str]], people: dict[str, int],
                samples: int, seed: int) -> pd.DataFrame:
    """(variant, reference, measure): variant's statistic minus reference's on the same bootstrap draws."""
    weights = bootstrap_weights(len(people), samples, seed)
    ones = np.ones((1, len(people)))
    rows = []
    for variant, reference, measure in pairs:
        a, b = statistics[variant][measure], statistics[reference][measure]
        difference = lambda w, a=a, b=b: a(w) - b(w)  # noqa: E731
        low, high, method = bca_interval(difference, len(people), difference(weights))
        rows.append({"variant": variant, "reference": reference, "measure": measure,
                     "difference": float(difference(ones)[0]), "difference_lo": low, "difference_hi": high,
                     "ci_method": method})
    return pd.DataFrame(rows, columns=COLUMNS)


def family_pairs(variants: list[str], families: list[str]) -> list[tuple[str, str]]:
    """(variant, the first family's variant of the same kind) for every later family's variant present:
    `gemma3-270m-lora` against `smollm2-135m-lora` when the models are [smollm2-135m, gemma3-270m]."""
    present = set(variants)
    return [(f"{family}-{kind}", f"{families[0]}-{kind}") for family in families[1:] for kind in ("zeroshot", "lora")
            if f"{family}-{kind}" in present and f"{families[0]}-{kind}" in present]


def panel_models(frame: pd.DataFrame, samples: int, seed: int, min_respondents: int, variables: tuple[str, ...],
                 real_effects: dict, families: list[str], fits: dict | None = None) -> pd.DataFrame:
    """Each later model family minus the first, variant for variant: log-loss (negative: it predicts the real
    answers better), subgroup-effect slope (positive: its subgroups differ more, as the real ones do) and the
    stacking gain over each card regression (`panel_stacking`'s fits, `fits` when already made; positive: it adds
    more beyond the card's fields)."""
    pairs = family_pairs(list(dict.fromkeys(frame.variant)), families)
    if not pairs:
        return pd.DataFrame(columns=COLUMNS)
    people = {p: i for i, p in enumerate(sorted(frame.persona_id.unique()))}
    variants = list(dict.fromkeys(v for pair in pairs for v in pair))
    statistics = variant_statistics(frame, variants, people, min_respondents, variables, real_effects)
    fits = stacked(frame, seed) if fits is None else fits
    measures = ["log_loss", "subgroup_effect_slope"]
    for regression in (r for r in CARD_REGRESSIONS if r in set(frame.variant)):
        measures.append(f"stacking_gain_{regression}")
        for variant in variants:
            keys, losses = fits[(variant, regression)]
            if set(keys) != set(people):
                raise ValueError(f"panel_models: {variant} stacked on {regression} does not cover the panel")
            statistics[variant][measures[-1]] = gain_statistic(keys, losses, people)
    return paired_rows(statistics, [(a, b, m) for a, b in pairs for m in measures], people, samples, seed)
