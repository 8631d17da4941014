"""What a survey statistician would use instead of a synthetic panel, written in the panel's own format.

Fitted on the run's training respondents only (the respondents the model was trained on), one model per item:
- `baseline-population`: the item's answer shares (persona-blind), Jeffreys-smoothed;
- `baseline-cell-smoothed`: the shares in the respondent's demographic cell (age band, sex, education, party),
  pulled towards the population shares by `panel.cell_smoothing` pseudo-respondents (not the majority answer of
  `baselines.CELL_BASELINE`, which notebook 04 scores as text);
- `baseline-logistic`: multinomial logistic regression on every field the card shows the model (its demographics,
  one-hot, and its values, traits and interests, which `gss2018.yaml` derives from the respondent's answers to other
  spending items: multi-hot), the L2 strength chosen by cross-validated log-loss on the training respondents;
- `baseline-boosting`: scikit-learn's `HistGradientBoostingClassifier` on the same features, its learning rate,
  iterations and depth chosen the same way.
The anchors (`anchor-logistic-all`, `anchor-boosting-all`) are the same two methods fitted on every eligible
respondent outside the panel (about 2,000 for GSS 2018): what the card can tell when data are plentiful. Only the
main run fits them. A new-items fold adds references that never see its held-out items' answers (`ITEM_BLIND`,
`panel.new_items`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..dataset.demographics import CARD_SUBGROUPS, SUBGROUPS, demographic_frame

FITTED = ("baseline-logistic", "baseline-boosting")
# A new-items fold's references that never see the held-out items' answers (`panel.new_items`)
ITEM_BLIND = ("uniform", "pooled-marginal", "pooled-logistic")
REFERENCE_VARIANTS = ("baseline-population", "baseline-cell-smoothed", *FITTED)
ANCHORS = {"anchor-logistic-all": "logistic", "anchor-boosting-all": "boosting"}
CATEGORICAL = CARD_SUBGROUPS + ("occupation", "region", "income_bracket")
LISTS = ("values", "traits", "interests")
LOGISTIC_C = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
BOOSTING_GRID = {"max_iter": [30, 100], "max_depth": [2, 3]}  # learning rate 0.1 (scikit-learn's default)
FOLDS = 5
MIN_TO_TUNE = 50  # with fewer answers a fold holds a handful of respondents: the middle of each grid, untuned
PROBABILITY_FLOOR = 1e-4  # an option never seen in training stays possible (log-loss stays finite)


def card_features(cards: list[dict]) -> pd.DataFrame:
    """Every field a card shows, one column each (lists joined, for the encoder)."""
    frame = demographic_frame(cards)[[*SUBGROUPS, "occupation", "ideology"]].copy()
    frame["region"] = [c.get("region", "") for c in cards]
    frame["income_bracket"] = [c.get("income_bracket", "") for c in cards]
    for name in LISTS:
        frame[name] = [list(c.get(name) or []) for c in cards]
    return frame


class CardEncoder:
    """Cards -> a dense 0/1 matrix: one column per category of each card field seen in fitting, one per list entry."""

    def fit(self, frame: pd.DataFrame) -> "CardEncoder":
        self.columns = [(name, value) for name in CATEGORICAL for value in sorted(set(frame[name]))]
        self.columns += [(name, value) for name in LISTS for value in sorted({v for vs in frame[name] for v in vs})]
        return self

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        out = np.zeros((len(frame), len(self.columns)))
        for j, (name, value) in enumerate(self.columns):
            cells = frame[name].to_numpy()
            out[:, j] = [value in c if name in LISTS else c == value for c in cells]
        return out


def folds_for(y: np.ndarray, seed: int):
    """Stratified folds when there are `MIN_TO_TUNE` answers and every answer given has at least two respondents,
    else None (no tuning)."""
    from sklearn.model_selection import StratifiedKFold

    smallest = np.bincount(y)[np.bincount(y) > 0].min()
    if smallest < 2 or len(y) < MIN_TO_TUNE:
        return None
    return StratifiedKFold(n_splits=int(min(FOLDS, smallest)), shuffle=True, random_state=seed)


def fit_classifier(method: str, x: np.ndarray, y: np.ndarray, seed: int):
    """One item's classifier, its settings chosen by cross-validated log-loss on (x, y) alone; None when y has one
    answer only. With too few respondents to cross-validate (`folds_for`), the middle of the grid."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression, LogisticRegressionCV
    from sklearn.model_selection import GridSearchCV

    if len(set(y)) < 2:
        return None
    folds = folds_for(y, seed)
    if method == "logistic":
        if folds is None:
            return LogisticRegression(C=LOGISTIC_C[len(LOGISTIC_C) // 2], max_iter=1000).fit(x, y)
        # the regularisation path with warm starts: several times faster than a grid of separate fits
        return LogisticRegressionCV(Cs=list(LOGISTIC_C), l1_ratios=(0.0,), cv=folds, scoring="neg_log_loss",
                                    max_iter=1000, use_legacy_attributes=False).fit(x, y)
    model = HistGradientBoostingClassifier(early_stopping=False, random_state=seed)
    if folds is None:
        return model.set_params(**{k: v[len(v) // 2] for k, v in BOOSTING_GRID.items()}).fit(x, y)
    return GridSearchCV(model, BOOSTING_GRID, scoring="neg_log_loss", cv=folds).fit(x, y).best_estimator_


def full_probabilities(model, x: np.ndarray, options: int, fallback: np.ndarray) -> np.ndarray:
    """(rows, options) probabilities in the bank's order: the classifier's (floored, renormalised) or `fallback`."""
    if model is None:
        return np.tile(fallback, (len(x), 1))
    full = np.zeros((len(x), options))
    full[:, model.classes_] = model.predict_proba(x)
    full = np.maximum(full, PROBABILITY_FLOOR)
    return full / full.sum(axis=1, keepdims=True)


def fitted_distributions(fit: list, panel: list, questions: dict, methods: dict[str, str], seed: int
                         ) -> dict[str, dict[tuple[str, str], np.ndarray]]:
    """variant -> {(persona_id, question_id): probabilities} of classifiers fitted on `fit` respondents' cards and
    answers (`methods`: variant -> 'logistic' or 'boosting'), for every panel pair."""
    fit_x, panel_x = card_features([r.card for r in fit]), card_features([r.card for r in panel])
    encoder = CardEncoder().fit(fit_x)
    fit_m, panel_m = encoder.transform(fit_x), encoder.transform(panel_x)
    out = {name: {} for name in methods}
    for qid, question in questions.items():
        options = list(question.options)
        answered = [i for i, r in enumerate(fit) if qid in r.answers]
        targets = [j for j, r in enumerate(panel) if qid in r.answers]
        if not targets:
            continue
        y = np.array([options.index(fit[i].answers[qid]) for i in answered], dtype=int)
        marginal = (np.bincount(y, minlength=len(options)) + 0.5) / (len(y) + 0.5 * len(options))
        for name, method in methods.items():
            model = fit_classifier(method, fit_m[answered], y, seed) if len(y) else None
            predicted = full_probabilities(model, panel_m[targets], len(options), marginal)
            for row, j in enumerate(targets):
                out[name][panel[j].persona_id, qid] = predicted[row]
    return out


def reference_distributions(train: list, panel: list, questions: dict, cell_smoothing: float, seed: int = 0,
                            anchor_pool: list | None = None) -> dict[str, dict[tuple[str, str], np.ndarray]]:
    """variant -> {(persona_id, question_id): probabilities in the bank's order} for every panel pair.

    `train`, `panel` and `anchor_pool` are `respondents.PanelRespondent`s; the references see only `train`
    respondents' answers, the anchors (when `anchor_pool` is given) only the pool's."""
    train_x, panel_x = card_features([r.card for r in train]), card_features([r.card for r in panel])
    out = {name: {} for name in REFERENCE_VARIANTS[:2]}
    for qid, question in questions.items():
        options = list(question.options)
        answered = [i for i, r in enumerate(train) if qid in r.answers]
        y = np.array([options.index(train[i].answers[qid]) for i in answered], dtype=int)
        counts = np.bincount(y, minlength=len(options)).astype(float)
        population = (counts + 0.5) / (counts.sum() + 0.5 * len(options))  # Jeffreys: no option gets 0
        cells: dict[tuple, np.ndarray] = {}
        for i, label in zip(answered, y):
            cells.setdefault(tuple(train_x.loc[i, list(SUBGROUPS)]), np.zeros(len(options)))[label] += 1
        for j, respondent in enumerate(panel):
            if qid not in respondent.answers:
                continue
            out["baseline-population"][respondent.persona_id, qid] = population
            cell = cells.get(tuple(panel_x.loc[j, list(SUBGROUPS)]), np.zeros(len(options)))
            out["baseline-cell-smoothed"][respondent.persona_id, qid] = (cell + cell_smoothing * population) / (
                cell.sum() + cell_smoothing)
    out |= fitted_distributions(train, panel, questions, {"baseline-logistic": "logistic",
                                                          "baseline-boosting": "boosting"}, seed)
    if anchor_pool is not None:
        out |= fitted_distributions(anchor_pool, panel, questions, ANCHORS, seed)
    return out


def model_variants(variants) -> list[str]:
    """The variants that are models (not a reference, an anchor or the human split-half), in the given order."""
    return [v for v in dict.fromkeys(variants) if v not in REFERENCE_VARIANTS and v not in ANCHORS
            and v not in ITEM_BLIND and not v.startswith("human")]
