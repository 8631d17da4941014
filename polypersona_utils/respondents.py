"""Real GSS 2018 respondents: the pool of cards with their real answers to the linked items (training respondents,
the held-out panel and the human ceiling all draw on it), and closed answers compared with them: agreement with the
respondent, and the alignment of answer distributions with all respondents' (`1 - W1/W1max`, Jensen-Shannon),
overall and per demographic subgroup."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from . import metrics
from .demographics import SUBGROUPS, demographic_frame


@dataclass(frozen=True)
class PanelRespondent:
    persona_id: str
    card: dict
    race: str  # from the GSS record: a subgroup the card does not show
    answers: dict[str, str]  # question_id -> real option


RACE = {1: "white", 2: "black", 3: "other race"}


def linked_questions(bank) -> list:
    """The bank's closed questions linked to a GSS item, one per item, in bank order."""
    return [q for q in bank.questions if q.gss_item and q.is_closed]


@lru_cache(maxsize=2)
def gss_respondents(bank_path: Path) -> tuple[PanelRespondent, ...]:
    """Every eligible GSS 2018 respondent who answered a linked item of the bank, with card, race and real answers,
    in id order: built once per process (the panel, the training respondents and the human ceiling all draw on it)."""
    from .personas import SPENDING_OPTIONS, _clean, eligible_respondents, gss_card
    from .questions import load_question_bank

    questions = linked_questions(load_question_bank(bank_path))
    respondents = []
    for row in eligible_respondents().to_dict("records"):
        row = {k: _clean(v) for k, v in row.items()}
        answers = {q.question_id: SPENDING_OPTIONS[row[q.gss_item]] for q in questions if row[q.gss_item] is not None}
        if answers:
            card = gss_card(row).to_dict()
            respondents.append(PanelRespondent(card["persona_id"], card, RACE.get(row["race"], "race not reported"),
                                               answers))
    return tuple(respondents)


def closed_alignment(frame: pd.DataFrame, gss_distributions: dict[str, dict[str, float]],
                     question_items: dict[str, str], options_of: dict[str, list[str]]) -> pd.DataFrame:
    """Per variant: agreement with the real respondent, unparseable share, and per linked question the alignment
    of the synthetic answer distribution with all GSS 2018 respondents' (1 - W1/W1max, Jensen-Shannon)."""
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
            population = [gss_distributions[question_items[question_id]][o] for o in options]
            alignments.append(metrics.wasserstein_alignment(synthetic, population))
            distances.append(metrics.jensen_shannon_distance(synthetic, population))
        row.update({"questions": len(alignments), "distribution_alignment": np.mean(alignments) if alignments
                    else np.nan, "jensen_shannon": np.mean(distances) if distances else np.nan})
        rows.append(row)
    return pd.DataFrame(rows)


# The population tables depend only on the shipped GSS data (and the seed): computed once per process, read only.
@lru_cache(maxsize=4)
def gss_item_distributions(seed: int) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """Answer shares of all GSS 2018 respondents per item, and the human split-half ceiling of the alignment
    (two random halves of the respondents compared with each other, seeded)."""
    from .personas import SPENDING_OPTIONS, load_gss_sample
    from .questions import GSS_QUESTION_ITEMS

    sample = load_gss_sample()
    rng = np.random.default_rng(seed)
    shares, ceilings = {}, {}
    options = [SPENDING_OPTIONS[c] for c in (1, 0, -1)]
    for item in GSS_QUESTION_ITEMS:
        answers = sample[item].dropna().map(lambda c: SPENDING_OPTIONS[int(c)]).to_numpy()
        shares[item] = {o: float((answers == o).mean()) for o in options}
        half = rng.permutation(len(answers)) < len(answers) // 2
        counts = lambda a: [float((a == o).sum()) for o in options]  # noqa: E731
        ceilings[item] = metrics.wasserstein_alignment(counts(answers[half]), counts(answers[~half]))
    return shares, ceilings


@lru_cache(maxsize=1)
def gss_subgroup_distributions() -> pd.DataFrame:
    """Long table of all GSS 2018 respondents' answer shares per item within each demographic subgroup
    (the same subgroup labels as the persona cards: reporting.demographic_frame)."""
    from .personas import SPENDING_OPTIONS, all_gss_cards, eligible_respondents
    from .questions import GSS_QUESTION_ITEMS
    sample = eligible_respondents()
    groups = demographic_frame(all_gss_cards(sample))
    rows = []
    for item in GSS_QUESTION_ITEMS:
        answered = sample[item].notna()
        answers = sample.loc[answered, item].map(lambda c: SPENDING_OPTIONS[int(c)])
        for variable in SUBGROUPS:
            for category, idx in groups.loc[answered, variable].groupby(groups.loc[answered, variable]).groups.items():
                shares = answers.loc[idx].value_counts(normalize=True)
                rows += [{"item": item, "variable": variable, "category": category, "option": o,
                          "share": float(shares.get(o, 0.0))} for o in SPENDING_OPTIONS.values()]
    return pd.DataFrame(rows)


def subgroup_alignment(frame: pd.DataFrame, cards: dict[str, dict], items: dict[str, str],
                       options_of: dict[str, list[str]]) -> pd.DataFrame:
    """Per variant and demographic subgroup: mean over linked questions of 1 - W1/W1max between the answers of the
    test personas in the subgroup and all GSS 2018 respondents in the same subgroup."""
    real = gss_subgroup_distributions().set_index(["item", "variable", "category", "option"])["share"]
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
