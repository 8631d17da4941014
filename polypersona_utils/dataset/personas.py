"""Persona cards from three sources: real respondents of a survey (default: GSS 2018), PersonaHub, or a user's own
panel file.

A card holds demographics, two values, two traits and two interests. For `source: survey` every field comes from one
real respondent, read as the survey's YAML says (`dataset/surveys.py`; GSS 2018: `data/surveys/gss2018.yaml`, which
writes out the codebooks and the value, trait and interest rules as tables a reader can check against the GSS
documentation). The survey's items are kept apart from the card, in `PersonaPanel.answers`, as references.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..user_files import UserFileError, read_rows, resolve_user_path
from .surveys import Survey, load_survey

CARD_FIELDS = (
    "persona_id", "source", "age", "gender", "occupation", "education", "region", "income_bracket",
    "political_identity", "values", "traits", "interests",
)
LIST_FIELDS = ("values", "traits", "interests")
NOT_REPORTED = "not reported"


class PersonaError(ValueError):
    """A malformed persona; the message names the row and the field."""


@dataclass(frozen=True)
class PersonaCard:
    persona_id: str
    source: str
    age: int
    gender: str
    occupation: str
    education: str
    region: str
    income_bracket: str
    political_identity: str
    values: list[str] = field(default_factory=list)
    traits: list[str] = field(default_factory=list)
    interests: list[str] = field(default_factory=list)
    description: str = ""  # free text (PersonaHub), shown in the card when present

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class PersonaPanel:
    cards: list[PersonaCard]
    # persona_id -> {survey item: option text}; only real, non-missing answers (survey personas only).
    answers: dict[str, dict[str, str]] = field(default_factory=dict)


def survey_panel(survey: Survey, n_personas: int, seed: int) -> PersonaPanel:
    """`n_personas` real respondents of `survey` drawn without replacement with `seed`, each with their real answers.

    Respondents who do not meet the survey's `eligible` conditions (GSS 2018: the seven without a recorded age) have
    no card; nothing is imputed.
    """
    eligible = survey.rows()
    if n_personas > len(eligible):
        raise PersonaError(f"n_personas={n_personas}: {survey.title} has only {len(eligible)} eligible respondents")
    chosen = sorted(np.random.default_rng(seed).choice(len(eligible), size=n_personas, replace=False))
    cards = [PersonaCard(**survey.cards()[i]) for i in chosen]
    return PersonaPanel(cards, {card.persona_id: survey.answers_of(eligible[i]) for card, i in zip(cards, chosen)})


def personahub_panel(n_personas: int, seed: int, dataset: str, config: str, revision: str,
                     rows: list[dict] | None = None) -> PersonaPanel:
    """The paper's source: PersonaHub's free-text personas (`persona` column), sampled with `seed`.

    PersonaHub has no structured demographics, so those fields read "not stated" and the text is the card's
    description. `rows` lets tests pass a local fixture with the same columns.
    """
    if rows is None:
        try:
            from datasets import load_dataset

            rows = list(load_dataset(dataset, config, revision=revision, split="train"))
        except Exception as exc:  # offline, a wrong name or revision: say which
            raise PersonaError(
                f"PersonaHub ({dataset}, config {config}, revision {revision}) could not be loaded: "
                f"{type(exc).__name__}: {exc}. Offline, use personas.source: survey or file."
            ) from exc
    texts = [str(r.get("persona", "")).strip() for r in rows]
    for index, text in enumerate(texts):
        if not text:
            raise PersonaError(f"PersonaHub row {index}: field 'persona' is missing or empty")
    if n_personas > len(texts):
        raise PersonaError(f"n_personas={n_personas}: PersonaHub gave only {len(texts)} rows")
    chosen = sorted(np.random.default_rng(seed).choice(len(texts), size=n_personas, replace=False))
    unknown = "not stated"
    cards = [
        PersonaCard(
            persona_id=f"personahub-{i:06d}", source="personahub", age=0, gender=unknown, occupation=unknown,
            education=unknown, region=unknown, income_bracket=unknown, political_identity=unknown,
            values=[unknown, unknown], traits=[unknown, unknown], interests=[unknown, unknown], description=texts[i],
        )
        for i in chosen
    ]
    return PersonaPanel(cards)


def _as_list(value, where: str, name: str) -> list[str]:
    if isinstance(value, str):  # CSV cells hold "a; b"
        value = [part.strip() for part in value.split(";")]
    if not isinstance(value, list) or len(value) != 2 or not all(isinstance(v, str) and v.strip() for v in value):
        raise PersonaError(f"{where}: field '{name}' must hold exactly two non-empty entries (CSV: 'a; b')")
    return [v.strip() for v in value]


def validate_card(raw: dict, where: str, source: str) -> PersonaCard:
    """One persona from a user panel; every problem names the row and the field."""
    if not isinstance(raw, dict):
        raise PersonaError(f"{where}: expected an object with fields {CARD_FIELDS[:1] + CARD_FIELDS[2:]}")
    unknown = set(raw) - set(CARD_FIELDS) - {"description"}
    if unknown:
        raise PersonaError(f"{where}: unknown field {', '.join(map(repr, sorted(unknown)))} "
                           f"(known: {', '.join(CARD_FIELDS)}, description)")
    empty = [name for name in CARD_FIELDS if name != "source" and (
        raw.get(name) is None or (isinstance(raw.get(name), str) and not raw[name].strip()))]
    if empty:
        raise PersonaError(f"{where}: field {', '.join(map(repr, empty))} missing or empty")
    try:
        age = int(str(raw["age"]).strip())
    except ValueError:
        raise PersonaError(f"{where}: field 'age' must be a whole number, got {raw['age']!r}") from None
    if not 18 <= age <= 120:
        raise PersonaError(f"{where}: field 'age' must be between 18 and 120, got {age}")
    text = {name: str(raw[name]).strip() for name in CARD_FIELDS if name not in LIST_FIELDS + ("age", "source")}
    return PersonaCard(
        **text, source=source, age=age,
        **{name: _as_list(raw[name], where, name) for name in LIST_FIELDS},
        description=str(raw.get("description") or "").strip(),
    )


def imported_card(raw, where: str) -> tuple[PersonaCard, list[str]]:
    """The persona of an imported record, as the released data have it: the card fields it holds; a missing text
    field reads "not reported", a missing list is empty and a missing age is left off the card (the prompt shows
    only what is known). Returns the card and the names of fields the card does not use (reported, never guessed
    into a card field)."""
    if not isinstance(raw, dict):
        raise PersonaError(f"{where}: expected an object with persona fields")
    if not str(raw.get("persona_id") or "").strip():
        raise PersonaError(f"{where}: field 'persona_id' missing or empty")
    age = raw.get("age")
    if age not in (None, ""):
        try:
            age = int(str(age).strip())
        except ValueError:
            raise PersonaError(f"{where}: field 'age' must be a whole number, got {raw['age']!r}") from None
        if not 18 <= age <= 120:
            raise PersonaError(f"{where}: field 'age' must be between 18 and 120, got {age}")
    lists = {}
    for name in LIST_FIELDS:
        value = raw.get(name) or []
        value = [part.strip() for part in value.split(";")] if isinstance(value, str) else value
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise PersonaError(f"{where}: field '{name}' must be a list of texts, got {raw[name]!r}")
        lists[name] = [v.strip() for v in value if v.strip()]
    text = {name: str(raw.get(name) or "").strip() or NOT_REPORTED
            for name in CARD_FIELDS if name not in LIST_FIELDS + ("age", "source", "persona_id")}
    card = PersonaCard(persona_id=str(raw["persona_id"]).strip(), source="imported", age=age or None, **text,
                       **lists, description=str(raw.get("description") or "").strip())
    return card, sorted(set(raw) - set(CARD_FIELDS) - {"description"})


def file_panel(path: str | Path) -> PersonaPanel:
    """A user's persona panel (CSV with a header, or JSON/JSONL), validated completely before anything is used."""
    path = Path(path)
    required = [name for name in CARD_FIELDS if name != "source"]
    try:
        rows = read_rows(path, required=required)
    except UserFileError as exc:
        raise PersonaError(str(exc)) from None
    if not rows:
        raise PersonaError(f"{path}: no personas")
    cards, seen = [], set()
    for line, raw in rows:
        where = f"{path}: line {line}"
        card = validate_card(raw, where, source="file")
        if card.persona_id in seen:
            raise PersonaError(f"{where}: field 'persona_id': duplicate '{card.persona_id}'")
        seen.add(card.persona_id)
        cards.append(card)
    return PersonaPanel(cards)


def load_panel(personas_config, seed: int) -> PersonaPanel:
    """The profile's persona panel (`personas` section of the config)."""
    if personas_config.source == "survey":
        return survey_panel(load_survey(personas_config.survey), personas_config.n_personas, seed)
    if personas_config.source == "personahub":
        return personahub_panel(personas_config.n_personas, seed, personas_config.personahub_dataset,
                                personas_config.personahub_config, personas_config.personahub_revision)
    try:
        path = resolve_user_path(personas_config.path, "personas.path")
    except UserFileError as exc:
        raise PersonaError(str(exc)) from None
    panel = file_panel(path)
    if personas_config.n_personas < len(panel.cards):
        chosen = sorted(np.random.default_rng(seed).choice(len(panel.cards), personas_config.n_personas, False))
        panel = PersonaPanel([panel.cards[i] for i in chosen])
    return panel
