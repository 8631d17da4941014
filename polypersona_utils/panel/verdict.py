"""The verdict table (`panel_verdict`): the comparison that decides, one row per variant and reference, best first.

Per row: log-loss of the held-out respondents' real answers with its interval (`panel_individual`); the paired
difference to the persona-blind population marginal and to the statistician on the same card (`baseline-logistic`:
the full-card logistic regression fitted on the same training respondents), each on the same respondent-bootstrap
draws with a BCa interval (a row against itself: 0, every draw); the subgroup-effect slope with its interval
(`panel_effects`); and, where the run measured it (`panel_worth`, the main run), what the row is worth in real
respondents per 100 at the middle sample size, with the Monte Carlo interval of that mean over the draws.
References get the same measures as the models. Pure function of the other panel tables and the distributions.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import norm

from .paired import pair_loss_statistic, paired_rows
from .references import ANCHORS, ITEM_BLIND, REFERENCE_VARIANTS

MARGINAL = "baseline-population"  # the persona-blind population shares
STATISTICIAN = "baseline-logistic"  # the statistician on the same card, fitted on the same respondents
AGAINST = {"marginal": MARGINAL, "statistician": STATISTICIAN}


def kind_of(variant: str) -> str:
    if variant in ANCHORS:
        return "anchor"
    if variant in REFERENCE_VARIANTS or variant in ITEM_BLIND:  # a new-items fold's references are references
        return "reference"
    return "control" if variant.startswith("shuffled-") else "model"


def middle_size(worth: pd.DataFrame) -> int:
    """The sample size the verdict reads worth at: 100 where measured, else the middle one."""
    sizes = sorted(worth.n.unique())
    return 100 if 100 in sizes else int(sizes[len(sizes) // 2])


def worth_columns(worth: pd.DataFrame, draws: int, level: float = 0.95) -> pd.DataFrame:
    """Per predictor at the middle sample size: worth per 100 and the interval of that mean over `draws` samples."""
    n = middle_size(worth)
    ppi = worth[(worth.n == n) & (worth.estimator == "ppi")].set_index("predictor")
    half = norm.ppf(0.5 + level / 2) * ppi.effective_n_sd / np.sqrt(draws) * 100 / n
    return pd.DataFrame({"worth_per_100": ppi.worth_per_100, "worth_lo": ppi.worth_per_100 - half,
                         "worth_hi": ppi.worth_per_100 + half, "worth_n": n})


def panel_verdict(answers: pd.DataFrame, samples: int, seed: int, individual: pd.DataFrame, effects: pd.DataFrame,
                  worth: pd.DataFrame | None = None, draws: int = 0, bases: dict[str, str] | None = None
                  ) -> pd.DataFrame:
    """The verdict table (module docstring), rows ordered by log-loss, best first. `answers` carry
    `measures.with_answer_columns`; a run without the marginal or the statistician lacks that column pair. `bases`:
    each model variant's base (`Variant.base_label`: NF4 + LoRA, as shipped, ...); a reference's is `-`."""
    variants = list(dict.fromkeys(answers.variant))
    present = {name: reference for name, reference in AGAINST.items() if reference in variants}
    people = {p: i for i, p in enumerate(sorted(answers.persona_id.unique()))}
    statistics = {}
    for variant, part in answers.groupby("variant", sort=False):
        if set(part.persona_id) != set(people):
            raise ValueError(f"panel_verdict: variant {variant} does not cover the panel's respondents")
        statistics[variant] = {"log_loss": pair_loss_statistic(part.reset_index(drop=True), people)}
    pairs = [(v, reference, "log_loss") for reference in present.values() for v in variants]
    paired = paired_rows(statistics, pairs, people, samples, seed).set_index(["variant", "reference"])
    loss = individual.set_index("variant")
    slope = effects.set_index("variant")
    rows = []
    for variant in variants:
        row = {"variant": variant, "kind": kind_of(variant), "base": (bases or {}).get(variant, "-"),
               "log_loss": loss.at[variant, "log_loss"],
               "log_loss_lo": loss.at[variant, "log_loss_lo"], "log_loss_hi": loss.at[variant, "log_loss_hi"]}
        for name, reference in present.items():
            difference = paired.loc[(variant, reference)]
            row |= {f"vs_{name}": difference.difference, f"vs_{name}_lo": difference.difference_lo,
                    f"vs_{name}_hi": difference.difference_hi, f"vs_{name}_ci_method": difference.ci_method}
        row |= {"slope": slope.at[variant, "slope"], "slope_lo": slope.at[variant, "slope_lo"],
                "slope_hi": slope.at[variant, "slope_hi"]}
        rows.append(row)
    table = pd.DataFrame(rows)
    if worth is not None and len(worth):
        table = table.join(worth_columns(worth, draws), on="variant")
    return table.sort_values(["log_loss", "variant"], kind="stable").reset_index(drop=True)
