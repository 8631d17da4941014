"""The synthetic panel's tables: answer distributions against the real answers of the same held-out respondents.

- `panel_alignment`: per variant and subgroup (`variable` `all` is the whole panel), the mean over items of
  `1 - W1/W1max` between the mean of the variant's probabilities and the real answer shares of the group's
  respondents, with a respondent-bootstrap interval, and the Jensen-Shannon distance. `human-split-half` rows: two
  disjoint random samples of the survey's real respondents of the group's size compared with each other, the ceiling.
- `panel_individual`: per variant, the log-loss and accuracy of each respondent's real answer under the variant's
  distribution, with respondent-bootstrap intervals.
- `panel_effects` (subgroup-effect recovery): how a subgroup's mean answer (options scored 0, 1, 2, ... in the bank's
  order) differs from the whole panel's in the variant's distributions, against how the same subgroup's real answers
  differ across all the survey's eligible respondents, over item x subgroup cells: correlation and slope, BCa
  intervals. `1 - W1/W1max` sits near 1 for any sensible distribution; this says whether the persona carries.
- `panel_subpop_units`: SubPOP's W1 / (options - 1) over subgroup x item cells, beside the human floor.
All are pure functions of the stored distributions (`results/<profile>/panel_distributions.csv`), so
`make check-results` recomputes them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..evaluation import metrics
from ..stats import bca_interval, spanning

HUMAN = "human-split-half"
LOG_FLOOR = 1e-6  # a probability of exactly 0 for the real answer would make the log-loss infinite


def bootstrap_weights(n: int, samples: int, seed: int) -> np.ndarray:
    """(samples, n) counts: how often each respondent is drawn in each resample (with replacement)."""
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(samples, n))
    return np.stack([np.bincount(row, minlength=n) for row in draws]).astype(float)


def group_items(group: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per item of one variant's rows for one group (in question_id order): each row's respondent (an index into the
    group's respondents, sorted), the predicted distributions and the real answers one-hot."""
    respondents = {p: i for i, p in enumerate(sorted(group.persona_id.unique()))}
    return [(np.array([respondents[p] for p in item.persona_id]), np.stack(item.probabilities.to_numpy()),
             np.stack(item.real_onehot.to_numpy())) for _, item in group.groupby("question_id", sort=True)]


def group_alignment(items: list, weights: np.ndarray | None) -> tuple[float, np.ndarray | None, float, int]:
    """(alignment, its bootstrap replicates, JS distance, items) of one group's items (`group_items`)."""
    values, replicates, distances = [], [], []
    for who, probs, real in items:
        values.append(metrics.wasserstein_alignment(probs.mean(axis=0), real.mean(axis=0)))
        distances.append(metrics.jensen_shannon_distance(probs.mean(axis=0), real.mean(axis=0)))
        if weights is not None:
            w = weights[:, who]  # (samples, rows of this item)
            total = np.maximum(w.sum(axis=1, keepdims=True), 1e-12)
            replicates.append(metrics.wasserstein_alignment((w @ probs) / total + 1e-12, (w @ real) / total + 1e-12))
    alignment = float(np.mean(values))
    return alignment, (np.mean(replicates, axis=0) if weights is not None else None), float(np.mean(distances)), \
        len(values)


def groups_of(frame: pd.DataFrame, variables: tuple[str, ...]):
    yield "all", "all", frame
    for variable in variables:
        for category, part in frame.groupby(variable, sort=True):
            yield variable, category, part


def panel_alignment(frame: pd.DataFrame, human: pd.DataFrame, samples: int, seed: int, variables: tuple[str, ...]
                    ) -> pd.DataFrame:
    """Per variant and group, 1 - W1/W1max of the mean distribution against the real shares, with a BCa interval on
    the respondent-bootstrap draws (resampling makes both means noisier and so the alignment lower: a percentile
    interval can leave out its own estimate), and the Jensen-Shannon distance; the human split-half rows after."""
    rows = []
    for variant, answers in frame.groupby("variant", sort=False):
        for variable, category, part in groups_of(answers, variables):
            n, prepared = part.persona_id.nunique(), group_items(part)
            alignment, replicates, js, items = group_alignment(prepared, bootstrap_weights(n, samples, seed))
            interval = bca_interval(lambda w, prepared=prepared: group_alignment(prepared, w)[1], n, replicates)
            rows.append({"variant": variant, "variable": variable, "category": category, "respondents": n,
                         "items": items, "alignment": alignment, "alignment_lo": interval.low,
                         "alignment_hi": interval.high, "alignment_ci_method": interval.method, "js_distance": js})
    return pd.concat([pd.DataFrame(rows), human], ignore_index=True)


def human_split_half(frame: pd.DataFrame, population: pd.DataFrame, seed: int, variables: tuple[str, ...],
                     resamples: int = 20) -> pd.DataFrame:
    """For each group of the panel: two disjoint random samples, each of the group's size, of real GSS 2018
    respondents of the same group, compared with each other (mean over `resamples` draws; 2.5 and 97.5
    percentiles as the interval). `population` has one row per (respondent, item) with the subgroup columns,
    `question_id` and `real_onehot`, like the panel frame."""
    rng = np.random.default_rng(seed)
    panel = frame[frame.variant == frame.variant.iloc[0]]
    rows = []
    for variable, category, part in groups_of(panel, variables):
        pool = population if variable == "all" else population[population[variable] == category]
        people = np.array(sorted(pool.persona_id.unique()))
        size = min(part.persona_id.nunique(), len(people) // 2)
        if size < 1:
            continue
        # Per item (in question_id order): its answers as a matrix and whose they are (an index into `people`)
        person = np.searchsorted(people, pool.persona_id.to_numpy())
        items = [(person[rows_of], np.stack(pool.real_onehot.to_numpy()[rows_of]))
                 for _, rows_of in sorted(pool.groupby("question_id").indices.items())]
        draws, distances = [], []
        for _ in range(resamples):
            half = np.zeros(len(people), np.int8)  # 1: first sample, 2: second, 0: neither
            chosen = rng.permutation(len(people))[: 2 * size]  # the same draw as permuting `people` itself
            half[chosen[:size]], half[chosen[size:]] = 1, 2
            values, js = [], []
            for whose, answers in items:
                a, b = answers[half[whose] == 1], answers[half[whose] == 2]
                if len(a) == 0 or len(b) == 0:
                    continue
                pa, pb = a.mean(axis=0), b.mean(axis=0)
                values.append(metrics.wasserstein_alignment(pa, pb))
                js.append(metrics.jensen_shannon_distance(pa, pb))
            draws.append(np.mean(values))
            distances.append(np.mean(js))
        rows.append({"variant": HUMAN, "variable": variable, "category": category, "respondents": size,
                     "items": panel[panel.persona_id.isin(part.persona_id)].question_id.nunique(),
                     "alignment": float(np.mean(draws)), "alignment_lo": float(np.percentile(draws, 2.5)),
                     "alignment_hi": float(np.percentile(draws, 97.5)),
                     "alignment_ci_method": f"percentile of {resamples} splits",
                     "js_distance": float(np.mean(distances))})
    return pd.DataFrame(rows)


def panel_individual(frame: pd.DataFrame, samples: int, seed: int) -> pd.DataFrame:
    rows = []
    for variant, answers in frame.groupby("variant", sort=False):
        real_p = np.array([p[o] for p, o in zip(answers.probabilities, answers.real_index)])
        loss = -np.log(np.maximum(real_p, LOG_FLOOR))
        hit = np.array([int(np.argmax(p)) == o for p, o in zip(answers.probabilities, answers.real_index)], float)
        people = {p: i for i, p in enumerate(sorted(answers.persona_id.unique()))}
        index = np.array([people[p] for p in answers.persona_id])
        weights = bootstrap_weights(len(people), samples, seed)[:, index]  # each pair weighted by its respondent
        row = {"variant": variant, "respondents": len(people)}
        for name, values in (("log_loss", loss), ("accuracy", hit)):
            replicates = weights @ values / weights.sum(axis=1)
            estimate, low, high = spanning(float(values.mean()), float(np.percentile(replicates, 2.5)),
                                           float(np.percentile(replicates, 97.5)))
            row.update({name: estimate, f"{name}_lo": low, f"{name}_hi": high})
        rows.append(row)
    return pd.DataFrame(rows)


def population_effects(population: pd.DataFrame, variables: tuple[str, ...]) -> dict[tuple[str, str, str], float]:
    """(item, variable, category) -> how the category's mean real answer (options scored 0, 1, 2, ... in the bank's
    order) differs from the item's mean, over every eligible respondent of the survey (`population`, with
    `real_index`): the real subgroup effects the panel's are compared with."""
    out = {}
    for qid, on_item in population.groupby("question_id"):
        base = on_item.real_index.mean()
        for variable in variables:
            for category, cell in on_item.groupby(variable):
                out[qid, variable, category] = float(cell.real_index.mean() - base)
    return out


def effect_plan(answers: pd.DataFrame, min_respondents: int, variables: tuple[str, ...], real_effects: dict | None):
    """What `effect_cells` computes with, whatever the weights: each row's respondent (a column of the weights), its
    synthetic and real answer score, and per item x subgroup cell with at least `min_respondents` panel respondents
    (and, with `real_effects`, a category the survey's respondents have) the item's rows, the cell's rows and the
    cell's real effect (None: from the panel's own answers)."""
    people = {p: i for i, p in enumerate(sorted(answers.persona_id.unique()))}
    col = np.array([people[p] for p in answers.persona_id])
    score = np.arange(len(answers.probabilities.iloc[0]))
    synthetic = np.stack(answers.probabilities.to_numpy()) @ score
    real = answers.real_index.to_numpy(float)
    persona = answers.persona_id.to_numpy()
    cells = []
    for qid in sorted(answers.question_id.unique()):
        on_item = (answers.question_id == qid).to_numpy()
        for variable in variables:
            values = answers[variable].to_numpy()
            for category in sorted(answers.loc[on_item, variable].unique()):
                cell = on_item & (values == category)
                if len(set(persona[cell])) < min_respondents or (
                        real_effects is not None and (qid, variable, category) not in real_effects):
                    continue  # too few respondents, or a category the survey's respondents do not have
                cells.append((np.flatnonzero(on_item), np.flatnonzero(cell),
                              None if real_effects is None else real_effects[qid, variable, category]))
    return len(people), col, synthetic, real, cells


def effect_cells(answers: pd.DataFrame, weights: np.ndarray | None, min_respondents: int, variables: tuple[str, ...],
                 real_effects: dict | None = None, plan=None):
    """(synthetic effects, real effects) over item x subgroup cells with at least `min_respondents` panel
    respondents, each (cells, draws). Synthetic effects come from the panel's respondents (weighted); real ones
    from `real_effects` (`population_effects`, the same in every draw) or, without it, from the panel's own real
    answers. Real effects estimated on the panel's few respondents per cell are noisy, and noise in the regressor
    attenuates the slope (and a bootstrap over the panel attenuates it further, so its draws fall below the
    estimate); the survey's ~2,000 respondents give the real effects almost without noise, and noise in the
    synthetic effects (the regressand) does not bias the slope. `plan`: `effect_plan`'s, when computed already."""
    people, col, synthetic, real, cells = plan or effect_plan(answers, min_respondents, variables, real_effects)
    w = np.ones((1, people)) if weights is None else weights
    syn_cells, real_cells, base = [], [], {}
    for item_rows, cell_rows, real_effect in cells:
        key = item_rows[0]
        if key not in base:
            base_w = w[:, col[item_rows]]
            base[key] = (base_w @ synthetic[item_rows] / base_w.sum(axis=1), base_w @ real[item_rows] / base_w.sum(axis=1))
        base_syn, base_real = base[key]
        cell_w = w[:, col[cell_rows]]
        total = np.maximum(cell_w.sum(axis=1), 1e-12)
        syn_cells.append(cell_w @ synthetic[cell_rows] / total - base_syn)
        real_cells.append(cell_w @ real[cell_rows] / total - base_real if real_effect is None
                          else np.full(len(w), real_effect))
    return np.array(syn_cells), np.array(real_cells)  # (cells, samples)


def correlation_and_slope(synthetic: np.ndarray, real: np.ndarray) -> tuple[float, float]:
    """Over cells: correlation of synthetic with real subgroup effects, and the slope of synthetic on real. A
    panel whose subgroups all answer alike (persona-blind) recovers no effect: correlation and slope 0."""
    if len(synthetic) < 3 or np.std(real) == 0:
        return float("nan"), float("nan")
    if np.abs(synthetic).max() < 1e-9:  # float noise around zero, not an effect
        return 0.0, 0.0
    slope = float(np.polyfit(real, synthetic, 1)[0])
    return float(np.corrcoef(real, synthetic)[0, 1]), slope


def effect_statistic(answers: pd.DataFrame, min_respondents: int, variables: tuple[str, ...], real_effects: dict):
    """statistic(weights (k, respondents)) -> (k, 2): the subgroup-effect correlation and slope with respondents
    counted as the weights say (a row of ones: the panel as it is)."""
    plan = effect_plan(answers, min_respondents, variables, real_effects)

    def statistic(weights: np.ndarray) -> np.ndarray:
        synthetic, real = effect_cells(answers, weights, min_respondents, variables, real_effects, plan)
        if not len(synthetic):
            return np.full((len(weights), 2), np.nan)
        return np.array([correlation_and_slope(synthetic[:, b], real[:, b]) for b in range(len(weights))])
    return statistic


def panel_effects(frame: pd.DataFrame, samples: int, seed: int, min_respondents: int, variables: tuple[str, ...],
                  real_effects: dict) -> pd.DataFrame:
    """Per variant: subgroup-effect correlation and slope over item x subgroup cells (the panel's synthetic effects
    against the survey's real ones, `effect_cells`), with BCa intervals on respondent-bootstrap draws (each column's
    `*_ci_method` says which method gave it: `stats.bca_interval`)."""
    rows = []
    for variant, answers in frame.groupby("variant", sort=False):
        answers = answers.reset_index(drop=True)
        n = answers.persona_id.nunique()
        statistic = effect_statistic(answers, min_respondents, variables, real_effects)
        correlation, slope = statistic(np.ones((1, n)))[0]
        replicates = statistic(bootstrap_weights(n, samples, seed))
        (c_lo, c_hi, c_method), (s_lo, s_hi, s_method) = [
            bca_interval(lambda w, j=j: statistic(w)[:, j], n, replicates[:, j]) for j in (0, 1)]
        cells = len(effect_cells(answers, None, min_respondents, variables, real_effects)[0])
        rows.append({"variant": variant, "cells": cells,
                     "correlation": correlation, "correlation_lo": c_lo, "correlation_hi": c_hi, "slope": slope,
                     "slope_lo": s_lo, "slope_hi": s_hi, "correlation_ci_method": c_method,
                     "slope_ci_method": s_method})
    return pd.DataFrame(rows)


def subpop_units(alignment: pd.DataFrame) -> pd.DataFrame:
    """SubPOP's measure beside ours: per variant (and the human split-half floor), the mean over subgroup x item
    cells of W1 / (options - 1) between the synthetic and the real answer distribution, that is 1 - alignment
    averaged over the `panel_alignment` rows of every subgroup (not `all`), each weighted by its items. SubPOP's
    held-out GSS 2022 figures for reading it against: fine-tuned 7B 0.121, uniform 0.208, human floor 0.033."""
    cells = alignment[alignment.variable != "all"]
    rows = [{"variant": variant, "subgroups": len(part), "cells": int(part["items"].sum()),
             "wasserstein_per_option_gap": float(np.average(1 - part.alignment, weights=part["items"]))}
            for variant, part in cells.groupby("variant", sort=False)]
    return pd.DataFrame(rows, columns=["variant", "subgroups", "cells", "wasserstein_per_option_gap"])


def calibration(frame: pd.DataFrame, bins: int = 10) -> pd.DataFrame:
    """Per variant and probability bin: mean predicted probability against the observed share of real answers,
    pooled over every option of every pair."""
    rows = []
    for variant, answers in frame.groupby("variant", sort=False):
        probs = np.concatenate(answers.probabilities.to_numpy())
        hits = np.concatenate(answers.real_onehot.to_numpy())
        which = np.minimum((probs * bins).astype(int), bins - 1)
        for b in range(bins):
            inside = which == b
            if inside.any():
                rows.append({"variant": variant, "bin": b, "predicted": float(probs[inside].mean()),
                             "observed": float(hits[inside].mean()), "pairs": int(inside.sum())})
    return pd.DataFrame(rows)


def with_answer_columns(frame: pd.DataFrame) -> pd.DataFrame:
    """Adds `real_index` and `real_onehot` (the real answer in the bank's option order)."""
    frame = frame.copy()
    frame["real_index"] = [list(o).index(r) for o, r in zip(frame.options, frame.real_option)]
    frame["real_onehot"] = [np.eye(len(o))[i] for o, i in zip(frame.options, frame.real_index)]
    frame["probabilities"] = [np.asarray(p, float) for p in frame.probabilities]
    return frame


def panel_tables(frame: pd.DataFrame, population: pd.DataFrame, samples: int, seed: int, min_respondents: int,
                 variables: tuple[str, ...]) -> dict[str, pd.DataFrame]:
    """Every panel table of this module; `frame` and `population` carry `with_answer_columns`; `variables` are the
    subgroup columns of `frame` compared within (`synthetic.subgroup_variables`)."""
    human = human_split_half(frame, population, seed, variables)
    alignment = panel_alignment(frame, human, samples, seed, variables)
    return {"panel_alignment": alignment,
            "panel_individual": panel_individual(frame, samples, seed),
            "panel_effects": panel_effects(frame, samples, seed, min_respondents, variables,
                                           population_effects(population, variables)),
            "panel_subpop_units": subpop_units(alignment),
            "panel_calibration": calibration(frame)}
