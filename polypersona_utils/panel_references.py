"""What a survey statistician would use instead of a synthetic panel, fitted on the training respondents only and
written in the panel's own format: the population marginal (persona-blind), the demographic-cell distribution
(smoothed towards the marginal), and a multinomial logistic regression on the card's demographics (scikit-learn).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from .demographics import demographic_frame

REFERENCE_VARIANTS = ("baseline-population", "baseline-demographic-cell", "baseline-logistic")
CELL = ("age_band", "gender", "education", "party")
FEATURES = ("age_band", "gender", "education", "party", "ideology")


def card_features(cards: list[dict]) -> pd.DataFrame:
    frame = demographic_frame(cards)[list(CELL)].copy()
    frame["ideology"] = [c["political_identity"].split(", ", 1)[-1] for c in cards]
    return frame


def reference_distributions(train: list, panel: list, questions: dict, cell_smoothing: float
                            ) -> dict[str, dict[tuple[str, str], np.ndarray]]:
    """variant -> {(persona_id, question_id): probabilities in the bank's order} for every panel pair.

    `train` and `panel` are `respondents.PanelRespondent`s; only `train` respondents' answers are used."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder

    train_x, panel_x = card_features([r.card for r in train]), card_features([r.card for r in panel])
    encoder = OneHotEncoder(handle_unknown="ignore").fit(train_x[list(FEATURES)])
    out = {name: {} for name in REFERENCE_VARIANTS}
    for qid, question in questions.items():
        options = list(question.options)
        answered = [i for i, r in enumerate(train) if qid in r.answers]
        y = np.array([options.index(train[i].answers[qid]) for i in answered], dtype=int)
        counts = np.bincount(y, minlength=len(options)).astype(float)
        population = (counts + 0.5) / (counts.sum() + 0.5 * len(options))  # Jeffreys: no option gets 0
        cells: dict[tuple, np.ndarray] = {}
        for i, label in zip(answered, y):
            key = tuple(train_x.loc[i, list(CELL)])
            cells.setdefault(key, np.zeros(len(options)))[label] += 1
        model = None
        if len(set(y)) > 1:
            model = LogisticRegression(C=1.0, max_iter=2000).fit(encoder.transform(train_x.loc[answered, list(FEATURES)]), y)
        targets = [j for j, r in enumerate(panel) if qid in r.answers]
        if model is not None and targets:
            predicted = model.predict_proba(encoder.transform(panel_x.loc[targets, list(FEATURES)]))
        for row, j in enumerate(targets):
            pid = panel[j].persona_id
            out["baseline-population"][pid, qid] = population
            cell = cells.get(tuple(panel_x.loc[j, list(CELL)]), np.zeros(len(options)))
            out["baseline-demographic-cell"][pid, qid] = (cell + cell_smoothing * population) / (
                cell.sum() + cell_smoothing)
            if model is None:
                out["baseline-logistic"][pid, qid] = population
            else:
                full = np.zeros(len(options))
                full[model.classes_] = predicted[row]
                # a floor keeps an option never seen in training possible (log-loss stays finite)
                full = np.maximum(full, 1e-4)
                out["baseline-logistic"][pid, qid] = full / full.sum()
    return out
