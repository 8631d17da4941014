"""Real respondents of the profile's survey (`personas.survey`, `dataset/surveys.py`): the pool of cards with their real
answers to the items the bank asks (training respondents, the held-out panel and the human ceiling all draw on it).
Closed answers compared with them: `survey_alignment`."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .questions import QuestionBank
from .surveys import Survey


@dataclass(frozen=True)
class PanelRespondent:
    persona_id: str
    card: dict
    subgroups: dict[str, str]  # the survey's extra subgroups the card does not show (GSS 2018: race)
    answers: dict[str, str]  # question_id -> real option


def linked_questions(bank) -> list:
    """The bank's closed questions that ask a survey item, one per item, in bank order."""
    return [q for q in bank.questions if q.survey_item and q.is_closed]


def linked_by_id(bank) -> dict:
    """question_id -> question, for the bank's linked questions."""
    return {q.question_id: q for q in linked_questions(bank)}


def linked_items(bank) -> dict[str, str]:
    """question_id -> the survey item it asks, for the bank's closed linked questions."""
    return {q.question_id: q.survey_item for q in linked_questions(bank)}


def survey_respondents(survey: Survey, bank: QuestionBank) -> tuple[PanelRespondent, ...]:
    """Every eligible respondent of the survey who answered an item the bank asks, with card, extra subgroups and
    real answers, in the respondents file's order (a run's `StudyRun.eligible`: the panel, the training respondents
    and the human ceiling all draw on it)."""
    questions = linked_questions(bank)
    respondents = []
    for row, card in zip(survey.rows(), survey.cards()):
        items = survey.answers_of(row)
        answers = {q.question_id: items[q.survey_item] for q in questions if q.survey_item in items}
        if answers:
            respondents.append(PanelRespondent(card["persona_id"], {**card, "description": ""},
                                               survey.subgroups_of(row), answers))
    return tuple(respondents)


def draw_respondents(pool, exclude: set[str], size: int | None, seed: int, only: set[str] | None = None
                     ) -> list[PanelRespondent]:
    """`size` respondents of `pool` (all when None) whose persona ids are not in `exclude` (and are in `only`, when
    given); the first `size` of one order drawn with `seed`, so that a smaller panel (an ablation run's) is part of a
    larger one (the main run's) and shares its scored zero-shot answers; in the pool's order."""
    respondents = [r for r in pool if r.persona_id not in exclude and (only is None or r.persona_id in only)]
    if size is not None and size < len(respondents):
        chosen = sorted(np.random.default_rng(seed).permutation(len(respondents))[:size])
        respondents = [respondents[i] for i in chosen]
    return respondents


def held_out_panel(eligible, dataset_ids: set[str], size: int | None, seed: int) -> list[PanelRespondent]:
    """The held-out panel: `size` (None: all) eligible respondents drawn with `seed`, none of them a persona of the
    dataset (`dataset_ids`), so none a training persona or training respondent of the main run."""
    return draw_respondents(eligible, dataset_ids, size, seed)


def survey_training_respondents(eligible, panel_ids: set[str], size: int | None, seed
                                ) -> list[PanelRespondent]:
    """A learning-curve run's training respondents (`ablation.respondent_pool: survey`): the first `size` (None:
    all) of one order, drawn with `seed`, of every eligible respondent outside the held-out panel (`panel_ids`), in
    that order: a larger point keeps a smaller one's respondents, each at the same position."""
    pool = [r for r in eligible if r.persona_id not in panel_ids]
    if size is not None and size > len(pool):
        raise ValueError(f"ablation.training_respondents: {size} asked, {len(pool)} eligible respondents are outside "
                         "the held-out panel")
    order = np.random.default_rng(seed).permutation(len(pool))
    return [pool[i] for i in order[:size]]
