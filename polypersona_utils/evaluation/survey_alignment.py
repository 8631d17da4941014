"""Closed answers against the survey's real respondents (notebook 04): agreement with the respondent, and the
alignment of answer distributions with all respondents' (`1 - W1/W1max`, Jensen-Shannon), overall and per
demographic subgroup."""
from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd

from ..dataset.demographics import SUBGROUPS, demographic_frame
from ..dataset.surveys import Survey, clean
from . import metrics


def closed_alignment(frame: pd.DataFrame, population_shares: dict[str, dict[str, float]],
                     question_items: dict[str, str], options_of: dict[str, list[str]]) -> pd.DataFrame:
    """Per variant: agreement with the real respondent, unparseable share, and per linked question the alignment
    of the synthetic answer distribution with all the survey's respondents' (1 - W1/W1max, Jensen-Shannon)."""
    rows = []
    closed = frame[frame.question_type != "open"]
    for variant, part in closed.groupby("variant", sort=False):
        real = part[part.reference_source == "real_respondent"]
        row = {"variant": variant, "closed_answers": len(part), "unparseable_share": part.unparseable.mean(),
               "real_answers": len(real), "agreement_with_respondent": (real.parsed_option == real.reference).mean()}
        alignments, distances = [], []
        for question_id, answers in real.groupby("question_id"):
            options = options_of[question_id]
            parsed = answers.parsed_option.dropna()
            if parsed.empty:
                continue
            synthetic = [float((parsed == o).sum()) for o in options]
            population = [population_shares[question_items[question_id]][o] for o in options]
            alignments.append(metrics.wasserstein_alignment(synthetic, population))
            distances.append(metrics.jensen_shannon_distance(synthetic, population))
        row.update({"questions": len(alignments), "distribution_alignment": np.mean(alignments) if alignments
                    else np.nan, "jensen_shannon": np.mean(distances) if distances else np.nan})
        rows.append(row)
    return pd.DataFrame(rows)


# The population tables depend only on the survey's data (and the seed): computed once per process, read only.
@lru_cache(maxsize=4)
def item_distributions(survey: Survey, seed: int) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Answer shares of all the survey's respondents per item, and the human split-half ceiling of the alignment
    (two random halves of the respondents compared with each other, seeded)."""
    rng = np.random.default_rng(seed)
    shares, ceilings = {}, {}
    for item, codes in survey.items.items():
        options = survey.options(item)
        answers = survey.frame[item].dropna().map(lambda c: codes[clean(c)]).to_numpy()
        shares[item] = {o: float((answers == o).mean()) for o in options}
        half = rng.permutation(len(answers)) < len(answers) // 2
        counts = lambda a: [float((a == o).sum()) for o in options]  # noqa: E731
        ceilings[item] = metrics.wasserstein_alignment(counts(answers[half]), counts(answers[~half]))
    return shares, ceilings


@lru_cache(maxsize=2)
def subgroup_distributions(survey: Survey) -> pd.DataFrame:
    """Long table of all the survey's eligible respondents' answer shares per item within each demographic subgroup
    (the same subgroup labels as the persona cards: demographics.demographic_frame)."""
    rows_in = survey.rows()
    groups = demographic_frame(list(survey.cards()))
    rows = []
    for item in survey.items:
        answered = pd.Series([r[item] is not None for r in rows_in])
        answers = pd.Series([survey.items[item][r[item]] for r in rows_in if r[item] is not None],
                            index=answered[answered].index)
        for variable in SUBGROUPS:
            for category, idx in groups.loc[answered, variable].groupby(groups.loc[answered, variable]).groups.items():
                shares = answers.loc[idx].value_counts(normalize=True)
                rows += [{"item": item, "variable": variable, "category": category, "option": o,
                          "share": float(shares.get(o, 0.0))} for o in survey.options(item)]
    return pd.DataFrame(rows)


def subgroup_alignment(frame: pd.DataFrame, cards: dict[str, dict], items: dict[str, str],
                       options_of: dict[str, list[str]], survey: Survey) -> pd.DataFrame:
    """Per variant and demographic subgroup: mean over linked questions of 1 - W1/W1max between the answers of the
    test personas in the subgroup and all the survey's respondents in the same subgroup."""
    real = subgroup_distributions(survey).set_index(["item", "variable", "category", "option"])["share"]
    linked = frame[frame.question_id.isin(items) & (frame.reference_source == "real_respondent")].copy()
    groups = demographic_frame([cards[p] for p in linked.persona_id])
    rows = []
    for variable in SUBGROUPS:
        linked["group"] = groups[variable].to_numpy()
        for (variant, category), part in linked.groupby(["variant", "group"], sort=False):
            alignments = []
            for question_id, answers in part.groupby("question_id"):
                parsed = answers.parsed_option.dropna()
                if parsed.empty:
                    continue
                options = options_of[question_id]
                synthetic = [float((parsed == o).sum()) for o in options]
                population = [real.get((items[question_id], variable, category, o), 0.0) for o in options]
                if sum(population) > 0:
                    alignments.append(metrics.wasserstein_alignment(synthetic, population))
            rows.append({"variant": variant, "variable": variable, "category": category, "answers": len(part),
                         "questions": len(alignments),
                         "distribution_alignment": float(np.mean(alignments)) if alignments else np.nan})
    return pd.DataFrame(rows)
