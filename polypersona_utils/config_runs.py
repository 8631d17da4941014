"""The sections of a profile that define runs beside the main one: the ablation runs' settings (`ablation`,
`ablation_runs`), the learning curve's points and the new-items folds; checked like every section
(`config_sections`)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional


@dataclass(frozen=True)
class CurvePoint:
    """One point of the learning curve (`make learning-curve`, notebook 07): a run of its own, trained on the real
    answers of `respondents` survey respondents (null: every eligible respondent outside the held-out panel; the
    first k of one seeded order, so a larger point keeps a smaller one's respondents) and scored on the whole
    held-out panel (`panel.respondents`), beside the references fitted on the same respondents. Packed by
    respondent; the other fields are the levers a point may change (`runs.learning_curve.point_overrides`)."""

    respondents: Optional[int] = 0
    model: Optional[str] = None  # a name under `models`; None: `ablation_runs.model`
    objective: Literal["sft", "option_likelihood"] = "sft"
    top_layers: Optional[int] = None  # LoRA on the top k decoder layers (`lora.top_layers`); None: every layer
    quantization: Literal["nf4", "none"] = "nf4"  # none: the unquantised base, computing in float32
    epochs: float = 1.0
    learning_rate: Optional[float] = None  # None: `training.learning_rate`

    def validate(self) -> None:
        if self.respondents is not None and self.respondents < 0:
            raise ValueError(f"respondents: 0 or more, or null for every eligible respondent, got {self.respondents}")
        if self.top_layers is not None and self.top_layers < 1:
            raise ValueError("top_layers: at least 1, or null for every layer")
        if self.epochs <= 0 or (self.learning_rate is not None and self.learning_rate <= 0):
            raise ValueError("epochs and learning_rate: must be positive")


@dataclass(frozen=True)
class NewItemsConfig:
    """New questions (`make new-items`, notebook 08): the linked items split into `folds` groups (seeded by
    `seeds.split`); each point below runs once per fold, trained on its respondents' answers to the other items
    only and scored on the held-out ones, beside references that never see those items' answers."""

    folds: int = 5
    points: list[CurvePoint] = field(default_factory=list)

    def validate(self) -> None:
        if self.folds < 2:
            raise ValueError(f"folds: at least 2, got {self.folds}")


@dataclass(frozen=True)
class AblationConfig:
    """What an ablation run changes beyond ordinary parameters (notebook 05, `make ablation`)."""

    heldout_domain: Optional[str] = None  # train on the other nine domains, test on this one
    include_persona: bool = True  # False: the persona card is removed at training and test time
    # Where a run's training respondents come from. dataset: the persona subset of `ablation_runs` plus
    # `training_respondents` of the dataset's own (`real_answers`, a seeded subset), scored on the ablation panel.
    # survey (a learning-curve point): `training_respondents` (null: all) of every eligible survey respondent outside
    # the held-out panel, their real answers alone, scored on the whole panel. The main run uses whole splits.
    respondent_pool: Literal["dataset", "survey"] = "dataset"
    training_respondents: Optional[int] = 0
    # A new-items fold (`new_items`): the linked items (question ids) held out of training; the run trains on its
    # survey respondents' answers to the other items and is scored on these alone
    heldout_items: list[str] = field(default_factory=list)

    def validate(self) -> None:
        if self.training_respondents is None and self.respondent_pool != "survey":
            raise ValueError("training_respondents: null (every respondent) only with respondent_pool: survey")
        if self.heldout_items and self.respondent_pool != "survey":
            raise ValueError("heldout_items: only with respondent_pool: survey (a new-items fold)")
        if self.training_respondents is not None and self.training_respondents < 0:
            raise ValueError("training_respondents: must be 0 or more")


# What of `ablation_runs` changes a run's records or model; the standard set's lists (rank_factors, kinds,
# heldout_domain: which runs exist) do not change any one run
RUN_RECORD_SETTINGS = ("train_personas", "val_personas", "test_personas", "model")


def run_record_settings(ablation_runs: dict | None) -> dict | None:
    """`ablation_runs` (as a dict) reduced to `RUN_RECORD_SETTINGS`: what enters a run's adapter settings
    (`modeling.training.adapter_settings`), and how results recorded with the whole section are compared
    (`runs.learning_curve.missing_points`)."""
    return None if ablation_runs is None else {k: v for k, v in ablation_runs.items() if k in RUN_RECORD_SETTINGS}


@dataclass(frozen=True)
class AblationRunsConfig:
    """The records every ablation run uses (the main run always uses whole splits): a fixed, seeded subset of each
    split's personas, the same for every run, so runs compare like for like with the `rank16` reference run.
    None keeps the whole split."""

    train_personas: Optional[int] = None
    val_personas: Optional[int] = None
    test_personas: Optional[int] = None
    # the standard held-out-domain run (`heldout-<domain>`); a domain of the profile's question bank
    heldout_domain: str = "healthcare"  # the paper's largest domain after demographics
    # the standard rank runs: `lora.r` times each factor (half, twice and four times the profile's rank)
    rank_factors: list[float] = field(default_factory=lambda: [0.5, 2, 4])
    # which kinds of run the standard set holds besides the reference (`ablations.standard_ablations`)
    kinds: list[Literal["rank", "heldout", "no-persona", "lora-16bit"]] = field(
        default_factory=lambda: ["rank", "heldout", "no-persona", "lora-16bit"])
    # the one model every ablation and learning-curve run trains and scores (a name under `models`); None: the first
    model: Optional[str] = None

    def validate(self) -> None:
        for name in ("train_personas", "val_personas", "test_personas"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ValueError(f"{name}: must be at least 1 or null (whole split), got {value}")
        if any(not 0 < f != 1 for f in self.rank_factors) or len(set(self.rank_factors)) != len(self.rank_factors):
            raise ValueError(f"rank_factors: distinct positive factors other than 1, got {self.rank_factors}")
