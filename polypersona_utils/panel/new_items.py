"""New questions: the synthetic panel on linked items held out of training (`new_items` folds), beside references
that never see those items' answers.

A fold's item-blind references (`item_blind_distributions`), fitted on the fold's training respondents' answers to
the other items only:
- `uniform`: every option equally likely;
- `pooled-marginal`: the other items' answers pooled by option text (the GSS spending scale is the same for all ten
  items), Jeffreys-smoothed, restricted to the held-out item's options;
- `pooled-logistic`: one multinomial logistic regression on the card's fields (`references.card_features`) over the
  other items' answers stacked, item ignored, its L2 strength chosen by cross-validated log-loss with each
  respondent's answers kept in one fold; applied to the held-out item, restricted to its options.
The fold's `baseline-*` references are fitted on the held-out item's own answers by the same respondents: ceilings,
what the statistician has once the question has been asked.

`new_items_tables` puts every fold's held-out pairs together (each panel pair is held out by exactly one fold) and
computes the panel's measures on them (`panel_new_items`, one row per variant) and what the panel is worth there.
Pure functions of the stored distributions, like every panel table.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .measures import panel_individual, panel_effects, population_effects
from .paired import panel_paired
from .references import (FITTED, FOLDS, ITEM_BLIND, LOGISTIC_C, PROBABILITY_FLOOR, REFERENCE_VARIANTS, CardEncoder,
                         card_features, model_variants)
from .worth import panel_worth, worth_predictors

CEILINGS = REFERENCE_VARIANTS  # fitted on the held-out item's own answers
COMPARED = ("pooled-logistic", "pooled-marginal")  # the paired differences `panel_new_items` reports


def option_labels(questions: dict) -> list[str]:
    """Every option text of the linked items, sorted: the pooled references' classes."""
    return sorted({option for question in questions.values() for option in question.options})


def stacked_answers(train: list, questions: dict, items: list[str], labels: list[str]):
    """(respondent index, label index) of each answer of `train` respondents to `items`, stacked."""
    rows = [(i, labels.index(r.answers[qid])) for i, r in enumerate(train) for qid in items if qid in r.answers]
    return np.array([i for i, _ in rows], dtype=int), np.array([y for _, y in rows], dtype=int)


def pooled_classifier(x: np.ndarray, y: np.ndarray, groups: np.ndarray, seed: int):
    """Multinomial logistic regression, L2 strength by cross-validated log-loss over folds that keep each
    respondent's answers together; the middle of the grid with too few respondents or answers to cross-validate."""
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import StratifiedGroupKFold

    counts = np.bincount(y)[np.bincount(y) > 0]
    if len(set(groups)) < 2 * FOLDS or counts.min() < FOLDS:
        return LogisticRegression(C=LOGISTIC_C[len(LOGISTIC_C) // 2], max_iter=1000).fit(x, y)
    folds = list(StratifiedGroupKFold(n_splits=FOLDS, shuffle=True, random_state=seed).split(x, y, groups))
    return LogisticRegressionCV(Cs=list(LOGISTIC_C), l1_ratios=(0.0,), cv=folds, scoring="neg_log_loss",
                                max_iter=1000, use_legacy_attributes=False).fit(x, y)


def restricted(probabilities: np.ndarray, labels: list[str], options: list[str]) -> np.ndarray:
    """(rows, labels) probabilities -> (rows, options) in the item's order, floored and renormalised."""
    out = np.maximum(probabilities[:, [labels.index(o) for o in options]], PROBABILITY_FLOOR)
    return out / out.sum(axis=1, keepdims=True)


def item_blind_distributions(train: list, panel: list, questions: dict, heldout: list[str], seed: int
                             ) -> dict[str, dict[tuple[str, str], np.ndarray]]:
    """variant (`ITEM_BLIND`) -> {(persona_id, held-out question_id): probabilities in the bank's order} for every
    panel pair of a held-out item; fitted on `train` respondents' answers to the other items only."""
    labels = option_labels(questions)
    others = [qid for qid in questions if qid not in heldout]
    who, y = stacked_answers(train, questions, others, labels)
    if not len(y):
        raise ValueError("new items: the training respondents answered none of the items not held out")
    counts = np.bincount(y, minlength=len(labels)).astype(float)
    encoder = CardEncoder().fit(card_features([r.card for r in train]))
    train_m = encoder.transform(card_features([r.card for r in train]))
    panel_m = encoder.transform(card_features([r.card for r in panel]))
    model = pooled_classifier(train_m[who], y, who, seed) if len(set(y)) > 1 else None
    full = np.zeros((len(panel), len(labels)))
    if model is None:
        full[:] = counts / counts.sum()
    else:
        full[:, model.classes_] = model.predict_proba(panel_m)
    out = {name: {} for name in ITEM_BLIND}
    for qid in heldout:
        options = list(questions[qid].options)
        pooled = counts[[labels.index(o) for o in options]] + 0.5
        rows = [j for j, r in enumerate(panel) if qid in r.answers]
        logistic = restricted(full[rows], labels, options)
        for row, j in enumerate(rows):
            key = (panel[j].persona_id, qid)
            out["uniform"][key] = np.full(len(options), 1 / len(options))
            out["pooled-marginal"][key] = pooled / pooled.sum()
            out["pooled-logistic"][key] = logistic[row]
    return out


def variant_kind(variant: str) -> str:
    if variant in ITEM_BLIND:
        return "reference (never saw the item's answers)"
    if variant in CEILINGS:
        return "ceiling (fitted on the item's own answers)"
    return "model"


def new_items_tables(answers: pd.DataFrame, population: pd.DataFrame, samples: int, seed: int, least: int,
                     variables: tuple[str, ...], worth, worth_seed: int) -> dict[str, pd.DataFrame]:
    """`panel_new_items` (one row per variant, best log-loss first: kind, log-loss and accuracy with respondent-
    bootstrap intervals, subgroup-effect correlation and slope with BCa intervals, and each model's paired
    differences to `COMPARED` on log-loss and slope) and `panel_new_items_worth` (`panel_worth` on the held-out
    pairs, every variant a predictor), from every fold's held-out pairs together (`answers` with
    `with_answer_columns`; `worth`: `panel.worth`)."""
    present = list(dict.fromkeys(answers.variant))
    individual = panel_individual(answers, samples, seed).set_index("variant")
    real_effects = population_effects(population, variables)
    effects = panel_effects(answers, samples, seed, least, variables, real_effects).set_index("variant")
    models = model_variants(present)
    compared = [r for r in COMPARED if r in present]
    paired = panel_paired(answers, samples, seed, least, variables, real_effects, models, compared)
    rows = []
    for variant in present:
        row = {"variant": variant, "kind": variant_kind(variant), "pairs": int((answers.variant == variant).sum())}
        row |= {c: individual.loc[variant, c] for c in ("log_loss", "log_loss_lo", "log_loss_hi", "accuracy",
                                                        "accuracy_lo", "accuracy_hi", "ci_method")
                if c in individual.columns}
        row |= {f"subgroup_effect_{c}": effects.loc[variant, c] for c in
                ("correlation", "correlation_lo", "correlation_hi", "correlation_ci_method", "slope", "slope_lo",
                 "slope_hi", "slope_ci_method") if c in effects.columns}
        for reference in COMPARED:  # every column in every table; NaN and "none" where the reference is absent
            for measure in ("log_loss", "subgroup_effect_slope"):
                match = paired[(paired.variant == variant) & (paired.reference == reference)
                               & (paired.measure == measure)]
                name = f"{measure}_minus_{reference}"
                if len(match):
                    first = match.iloc[0]
                    row |= {name: first.difference, f"{name}_lo": first.difference_lo,
                            f"{name}_hi": first.difference_hi, f"{name}_ci_method": first.ci_method}
                else:
                    row |= {name: np.nan, f"{name}_lo": np.nan, f"{name}_hi": np.nan, f"{name}_ci_method": "none"}
        rows.append(row)
    table = pd.DataFrame(rows).sort_values("log_loss", kind="stable").reset_index(drop=True)
    predictors = worth_predictors(present, [*ITEM_BLIND, *FITTED])
    return {"panel_new_items": table,
            "panel_new_items_worth": panel_worth(answers, predictors, variables, worth, worth_seed)}
