"""The question bank: a versioned YAML file (polypersona_utils/data/question_bank.yaml) and its schema.

Schema: `version`, `domain_quotas` (responses per domain in the paper's 3,568), `option_sets` (name -> ordered list),
`questions` (id, domain, type, text, options: <set name> for closed types, optional survey_item: a column of the
profile's survey, `dataset/surveys.py`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import yaml

from ..yaml_files import load_yaml

QUESTION_TYPES = ("open", "likert", "yesno", "agreement")
CLOSED_TYPES = ("likert", "yesno", "agreement")
# The option set a closed question of each type is asked with when a record brings none and the bank does not
# hold it (imported datasets): the names are the bank's option sets.
STANDARD_SCALES = {"likert": "agree5", "agreement": "agree5", "yesno": "yesno"}


class QuestionBankError(ValueError):
    """A malformed question bank; the message names the file, the question and the field."""


@dataclass(frozen=True)
class Question:
    question_id: str
    domain: str
    question_type: str
    text: str
    options: tuple[str, ...] = ()
    survey_item: Optional[str] = None  # the survey item it asks (closed: the real answer is the reference)

    @property
    def is_closed(self) -> bool:
        return self.question_type in CLOSED_TYPES


@dataclass(frozen=True)
class QuestionBank:
    version: int
    domain_quotas: dict[str, int]
    questions: tuple[Question, ...]
    option_sets: dict[str, tuple[str, ...]] = field(default_factory=dict)  # name -> ordered options

    def standard_scale(self, question_type: str) -> tuple[str, ...]:
        """The options of `STANDARD_SCALES[question_type]` in this bank."""
        return self.option_sets[STANDARD_SCALES[question_type]]

    @property
    def domains(self) -> list[str]:
        return list(self.domain_quotas)

    def by_id(self) -> dict[str, Question]:
        return {q.question_id: q for q in self.questions}


def load_question_bank(path: Path) -> QuestionBank:
    path = Path(path)
    try:
        data = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise QuestionBankError(f"{path}: cannot read the question bank: {exc}") from None
    if not isinstance(data, dict):
        raise QuestionBankError(f"{path}: expected a mapping at the top level")
    for key in ("version", "domain_quotas", "option_sets", "questions"):
        if key not in data:
            raise QuestionBankError(f"{path}: missing top-level key '{key}'")
    quotas = data["domain_quotas"]
    option_sets = data["option_sets"]
    if not isinstance(quotas, dict) or not all(isinstance(v, int) and v > 0 for v in quotas.values()):
        raise QuestionBankError(f"{path}: domain_quotas must map each domain to a positive integer")
    allowed = {"id", "domain", "type", "text", "options", "survey_item"}
    questions, seen = [], set()
    for index, raw in enumerate(data["questions"] or []):
        where = f"{path}: question {index} ({raw.get('id', '?') if isinstance(raw, dict) else '?'})"
        if not isinstance(raw, dict):
            raise QuestionBankError(f"{where}: expected a mapping")
        for key in ("id", "domain", "type", "text"):
            if not isinstance(raw.get(key), str) or not raw[key].strip():
                raise QuestionBankError(f"{where}: field '{key}' is missing or empty")
        extra = set(raw) - allowed
        if extra:
            raise QuestionBankError(f"{where}: unknown field '{sorted(extra)[0]}'")
        if raw["id"] in seen:
            raise QuestionBankError(f"{where}: duplicate id")
        seen.add(raw["id"])
        if raw["domain"] not in quotas:
            raise QuestionBankError(f"{where}: field 'domain': '{raw['domain']}' has no quota")
        if raw["type"] not in QUESTION_TYPES:
            raise QuestionBankError(f"{where}: field 'type': must be one of {QUESTION_TYPES}")
        options: tuple[str, ...] = ()
        if raw["type"] in CLOSED_TYPES:
            set_name = raw.get("options")
            if set_name not in option_sets:
                raise QuestionBankError(f"{where}: field 'options': closed questions name a defined option set")
            options = tuple(str(o) for o in option_sets[set_name])
            if len(options) < 2 or len(set(options)) != len(options):
                raise QuestionBankError(f"{where}: option set '{set_name}' needs two or more distinct options")
        elif "options" in raw:
            raise QuestionBankError(f"{where}: field 'options': open questions have no options")
        survey_item = raw.get("survey_item")
        if survey_item is not None and (not isinstance(survey_item, str) or not survey_item.strip()):
            raise QuestionBankError(f"{where}: field 'survey_item': a column name of the survey, got {survey_item!r}")
        questions.append(Question(raw["id"], raw["domain"], raw["type"], raw["text"].strip(), options, survey_item))
    if not questions:
        raise QuestionBankError(f"{path}: no questions")
    empty = [d for d in quotas if not any(q.domain == d for q in questions)]
    if empty:
        raise QuestionBankError(f"{path}: domain '{empty[0]}' has a quota but no question")
    missing = sorted(set(STANDARD_SCALES.values()) - set(option_sets))
    if missing:
        raise QuestionBankError(f"{path}: option_sets: the standard scale(s) {missing} are not defined")
    return QuestionBank(int(data["version"]), dict(quotas), tuple(questions),
                        {name: tuple(str(o) for o in options) for name, options in option_sets.items()})
