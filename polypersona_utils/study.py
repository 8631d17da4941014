"""One run of the study, loaded once: a loaded profile (`config.load_run`: profile, run name, overrides) and the
objects the stages read from it. Each is made the first time it is asked for and kept, and the run is passed down to
the functions that need them, so that no function rebuilds them from the config.

    run = StudyRun(config)
    run.panel                  # the held-out real respondents the synthetic panel is scored against
    run.training_respondents   # the respondents the run trained on, whom the references are fitted on
"""
from __future__ import annotations

from dataclasses import replace
from functools import cached_property

from .config import Config
from .dataset.questions import Question, QuestionBank
from .dataset.respondents import (PanelRespondent, draw_respondents, held_out_panel, linked_by_id,
                                  survey_respondents)
from .dataset.splits import curve_respondents, dataset_persona_ids, load_split
from .dataset.surveys import Survey
from .modeling.generation import Variant, variants


class StudyRun:
    def __init__(self, config: Config):
        self.config = config

    @property
    def survey(self) -> Survey:
        return self.config.survey

    @property
    def bank(self) -> QuestionBank:
        return self.config.bank

    @cached_property
    def linked_questions(self) -> dict[str, Question]:
        """question_id -> question, for the bank's closed questions that ask a survey item."""
        return linked_by_id(self.bank)

    @cached_property
    def eligible(self) -> tuple[PanelRespondent, ...]:
        """Every respondent of the survey who answered an item the bank asks (the human ceiling's pool)."""
        return survey_respondents(self.survey, self.bank)

    @cached_property
    def panel(self) -> list[PanelRespondent]:
        """The held-out panel: `panel.respondents` (an ablation run on the dataset's respondents:
        `panel.ablation_respondents`) eligible respondents drawn with `seeds.panel`, none of them a persona of the
        dataset (so none a training persona); a learning-curve run is scored on the whole panel, a new-items fold on
        the whole panel's answers to the items it held out."""
        config = self.config
        small = config.run and config.ablation.respondent_pool == "dataset"
        size = config.panel.ablation_respondents if small else config.panel.respondents
        panel = held_out_panel(self.eligible, dataset_persona_ids(config.paths().data), size, config.seeds.panel)
        heldout = set(config.ablation.heldout_items)
        if not heldout:
            return panel
        # a new-items fold is scored on the items it held out of training, and only on them
        asked = [replace(r, answers={q: a for q, a in r.answers.items() if q in heldout}) for r in panel]
        return [r for r in asked if r.answers]

    @cached_property
    def training_respondents(self) -> list[PanelRespondent]:
        """The respondents of the run's train split, with all their linked answers: what the references are fitted
        on (a learning-curve run: its survey respondents)."""
        if self.config.run and self.config.ablation.respondent_pool == "survey":
            return curve_respondents(self.config, self.eligible)
        train_ids = {r["persona_id"] for r in load_split(self.config, "train")}
        return draw_respondents(self.eligible, set(), None, self.config.seeds.panel, only=train_ids)

    @cached_property
    def anchor_pool(self) -> list[PanelRespondent] | None:
        """The main run's anchors are fitted on every eligible respondent outside its panel; an ablation run (and a
        profile with `panel.anchors: false`) has none."""
        if self.config.run or not self.config.panel.anchors:
            return None
        return draw_respondents(self.eligible, {r.persona_id for r in self.panel}, None, self.config.seeds.panel)

    @cached_property
    def variants(self) -> list[Variant]:
        """The run's model variants: `<model>-zeroshot` for every model, `<model>-lora` for every trained one."""
        return variants(self.config)
