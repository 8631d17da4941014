"""Profile configuration: `params/<profile>.yaml` read into typed dataclasses.

Every YAML key is a dataclass field; an unknown key, a wrong type or an impossible value raises `ConfigError`
naming the file and the dotted key (the alignment-handbook recipe pattern, without nanoGPT's `exec`).
`overrides` ({"training.epochs": 1}) change single values after loading, for ablation reruns.

The sections' dataclasses are in `config_sections` (and `config_runs`: ablations, the learning curve, new items); here the whole profile (`Config`, with the survey and question
bank it names, each loaded once) and the one loader.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Optional

import yaml

from . import paths
from .config_runs import AblationConfig, AblationRunsConfig, CurvePoint, NewItemsConfig
from .config_sections import (GenerationConfig, LoraConfig, MetricsConfig, ModelSpec, PanelConfig, PersonasConfig,
                              QuestionsConfig, RealAnswersConfig, ReferencesConfig, SeedsConfig, SplitsConfig,
                              TrainingConfig)
from .dataset.questions import load_question_bank
from .dataset.surveys import check_links, load_survey
from .yaml_files import load_yaml


class ConfigError(ValueError):
    """A profile file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Config:
    profile: str
    description: str = ""
    seeds: SeedsConfig = field(default_factory=SeedsConfig)
    personas: PersonasConfig = field(default_factory=PersonasConfig)
    questions: QuestionsConfig = field(default_factory=QuestionsConfig)
    references: ReferencesConfig = field(default_factory=ReferencesConfig)
    real_answers: RealAnswersConfig = field(default_factory=RealAnswersConfig)
    splits: SplitsConfig = field(default_factory=SplitsConfig)
    models: list[ModelSpec] = field(
        default_factory=lambda: [ModelSpec(name="smollm2-135m", model_id="smollm2-135m-instruct")]
    )
    lora: LoraConfig = field(default_factory=LoraConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    panel: PanelConfig = field(default_factory=PanelConfig)
    ablation: AblationConfig = field(default_factory=AblationConfig)
    ablation_runs: AblationRunsConfig = field(default_factory=AblationRunsConfig)
    learning_curve: list[CurvePoint] = field(default_factory=list)  # `make learning-curve`: one run per point
    new_items: NewItemsConfig = field(default_factory=NewItemsConfig)  # `make new-items`: a run per point and fold
    run: str = ""  # name of an ablation run: its outputs go under <profile>/runs/<run>/
    source_file: Optional[str] = None  # set by load_config, never read from YAML

    def validate(self) -> None:
        names = [m.name for m in self.models]
        if not names or len(names) != len(set(names)):
            raise ValueError(f"models: need at least one, with unique names, got {names}")
        if self.ablation_runs.model is not None and self.ablation_runs.model not in names:
            raise ValueError(f"ablation_runs.model: must name one of the models {names}, "
                             f"got {self.ablation_runs.model!r}")

        for key, points in (("learning_curve", self.learning_curve), ("new_items.points", self.new_items.points)):
            for index, point in enumerate(points):
                if point.model is not None and point.model not in names:
                    raise ValueError(f"{key}[{index}].model: must name one of the models {names}, "
                                     f"got {point.model!r}")
        if self.run and not all(c.isalnum() or c in "-_." for c in self.run):
            raise ValueError(f"run: letters, digits, '-', '_' and '.' only, got {self.run!r}")
        check_links(self.survey, self.bank, self.questions.bank_path)
        linked = [q.question_id for q in self.bank.questions if q.survey_item and q.is_closed]
        unknown = [qid for qid in self.ablation.heldout_items if qid not in linked]
        if unknown:
            raise ValueError(f"ablation.heldout_items: {unknown[0]!r} is not a linked item of the question bank "
                             f"({linked})")
        for key, domain in (("ablation.heldout_domain", self.ablation.heldout_domain),
                            ("ablation_runs.heldout_domain", self.ablation_runs.heldout_domain)):
            if domain is not None and domain not in self.bank.domains:  # the bank declares its domains
                raise ValueError(f"{key}: must be one of the question bank's domains {self.bank.domains}, "
                                 f"got {domain!r}")

    @cached_property
    def survey(self):
        """The profile's survey (`personas.survey`): what every step reads about real respondents."""
        return load_survey(self.personas.survey)

    @cached_property
    def bank(self):
        """The profile's question bank (`questions.bank_path`), read once for this config."""
        return load_question_bank(self.questions.bank_path)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def select(self, keys: tuple[str, ...]) -> dict[str, Any]:
        """The values at dotted `keys` ("lora", "seeds.training"): what one step of the study reads."""
        values, out = self.to_dict(), {}
        for key in keys:
            node = values
            for part in key.split("."):
                node = node[part]
            out[key] = node
        return out

    def paths(self, split: str = "test") -> paths.RunPaths:
        """Where this run reads and writes, evaluated on `split` (data always comes from the profile)."""
        return paths.RunPaths(self.profile, self.run, split)


def _convert(value: Any, annotation: Any, where: str) -> Any:
    """Check `value` against a type hint and build nested dataclasses; raise ConfigError naming `where`."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if annotation is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        mappings = [a for a in inner if typing.get_origin(a) is dict]
        if isinstance(value, dict) and mappings:  # `str | dict[...]`: a mapping where one is given
            return _convert(value, mappings[0], where)
        return _convert(value, [a for a in inner if a not in mappings][0], where)
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: must be one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(annotation):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return _build(annotation, value, where)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        return [_convert(item, args[0], f"{where}[{i}]") for i, item in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        return {str(k): _convert(v, args[1], f"{where}.{k}") for k, v in value.items()}
    if annotation is float:
        # YAML reads 2e-4 as a string (it wants 2.0e-4); accept numeric strings, reject bools.
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{where}: expected a number, got {value!r}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        if not math.isfinite(value):
            raise ConfigError(f"{where}: must be a finite number, got {value!r}")
        return float(value)
    if annotation is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if annotation is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if annotation is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    raise TypeError(f"unsupported annotation {annotation!r} at {where}")


def _build(cls: type, data: dict, where: str) -> Any:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls) if f.name != "source_file"}
    unknown = sorted(set(data) - known)
    if unknown:
        prefix = f"{where}." if where else ""
        raise ConfigError(f"{prefix}{unknown[0]}: unknown key (known: {sorted(known)})")
    kwargs = {
        key: _convert(value, hints[key], f"{where}.{key}" if where else key) for key, value in data.items()
    }
    try:
        obj = cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where or 'top level'}: {exc}") from None
    if hasattr(obj, "validate"):
        try:
            obj.validate()
        except ValueError as exc:
            raise ConfigError(f"{where + '.' if where else ''}{exc}") from None
    return obj


def _apply_override(data: dict, dotted_key: str, value: Any) -> None:
    node = data
    *parents, last = dotted_key.split(".")
    for part in parents:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted_key}: {part} is not a section")
    node[last] = value


def load_run(profile: str | Path, run: str = "", overrides: dict[str, Any] | None = None) -> Config:
    """A run's identity, (profile, run, overrides), as its configuration; `config.paths(split)` says where it reads
    and writes. The one way notebooks, ablations and the command line turn a run into settings and places."""
    config = load_config(profile, overrides={**(overrides or {}), **({"run": run} if run else {})})
    return one_model(config) if run else config


def run_of(config: Config, run: str, overrides: dict[str, Any]) -> Config:
    """`config` (however it was loaded, overrides included) as the run `run` with `overrides` on top: what
    `load_run` gives for a profile file."""
    data = {k: v for k, v in config.to_dict().items() if k != "source_file"}
    for key, value in {**overrides, "run": run}.items():
        _apply_override(data, key, value)
    try:
        built = _build(Config, data, "")
    except ConfigError as exc:
        raise ConfigError(f"{config.source_file}: {exc}") from None
    return one_model(dataclasses.replace(built, source_file=config.source_file))


def run_model(config: Config) -> str:
    """The model a run trains and scores: `ablation_runs.model`, else the profile's first."""
    return config.ablation_runs.model or config.models[0].name


def one_model(config: Config) -> Config:
    """A run trains and scores one model (`run_model`): a run compares settings."""
    chosen = run_model(config)
    return dataclasses.replace(config, models=[m for m in config.models if m.name == chosen])


def load_config(profile_or_path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read `params/<profile>.yaml` (or a YAML path) into a validated `Config`.

    A profile's identity is its file name: `profile:` in the file, when given, must say the same, so a copied
    profile can never write into the original's artifacts and results."""
    path = paths.params_file(str(profile_or_path))
    if not path.exists():
        available = sorted(p.stem for p in paths.PARAMS_DIR.glob("*.yaml"))
        raise ConfigError(f"{path}: no such profile file (available profiles: {available})")
    try:
        data = load_yaml(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if data is None:
        raise ConfigError(f"{path}: empty profile file (expected at least `profile: {path.stem}`)")
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    if data.get("profile", path.stem) != path.stem:
        raise ConfigError(f"{path}: profile: {data['profile']!r} differs from the file name; a profile is named by "
                          f"its file (set `profile: {path.stem}`), so that it writes only under "
                          f"artifacts/{path.stem} and results/{path.stem}")
    data["profile"] = path.stem
    if "profile" in (overrides or {}):
        raise ConfigError(f"{path}: profile: set by its file name, not by an override")
    for key, value in (overrides or {}).items():
        _apply_override(data, key, value)
    try:
        config = _build(Config, data, "")
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None
    # relative to the workspace when inside it, so provenance records do not hold the path of the clone that ran
    source = path.resolve()
    source = source.relative_to(paths.WORKSPACE) if source.is_relative_to(paths.WORKSPACE) else source
    return dataclasses.replace(config, source_file=str(source))
