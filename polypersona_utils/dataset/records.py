"""The record and how one is made: questions assigned to persona cards, references planned (a real respondent's own
answer or the teacher's), records built and checked. Splits are in `splits`, imported records in `record_import`,
notebook 01 end to end in `build`.

Record (contract): id, persona_id, domain, question_id, question, question_type, options, persona, messages,
reference, reference_source; `messages` is [system, user, assistant] from `prompts.build_messages` and the
assistant turn equals `reference`.
"""
from __future__ import annotations

import dataclasses
from collections import Counter

import numpy as np

from .personas import PersonaPanel
from .prompts import build_messages, with_known_stance
from .questions import Question, QuestionBank
from .respondents import linked_by_id, survey_respondents
from .teacher import TeacherRequest

RECORD_FIELDS = ("id", "persona_id", "domain", "question_id", "question", "question_type", "options", "persona",
                 "messages", "reference", "reference_source")
REFERENCE_SOURCES = ("real_respondent", "teacher", "imported")
# What notebook 01 reads from the configuration: its provenance and make's step stamp both come from here.
DATASET_SETTINGS = ("profile", "description", "personas", "questions", "references", "real_answers", "splits",
                    "seeds.persona_sample", "seeds.question_sample", "seeds.split", "seeds.teacher")


def dataset_settings(config) -> dict:
    return config.select(DATASET_SETTINGS)


def assign_questions(panel: PersonaPanel, bank: QuestionBank, per_persona: list[int], seed: int,
                     linked_per_persona: int = 0) -> list[tuple[dict, Question]]:
    """Persona i gets `per_persona[i]` distinct questions, domains drawn in the paper's proportions.

    A question's weight is its domain quota divided by the domain's number of questions. For survey personas a
    linked closed question whose real answer is missing is not eligible (its answer would have to be invented),
    and `linked_per_persona` of their questions are first drawn among the linked closed items they answered.
    """
    rng = np.random.default_rng(seed)
    per_domain = Counter(q.domain for q in bank.questions)
    weight = {q.question_id: bank.domain_quotas[q.domain] / per_domain[q.domain] for q in bank.questions}

    def draw(candidates: list[Question], size: int) -> list[Question]:
        if size <= 0 or not candidates:
            return []
        w = np.array([weight[q.question_id] for q in candidates])
        picked = rng.choice(len(candidates), size=min(size, len(candidates)), replace=False, p=w / w.sum())
        return [candidates[i] for i in picked]

    pairs = []
    for card, count in zip(panel.cards, per_persona, strict=True):
        known = panel.answers.get(card.persona_id, {})
        from_survey = card.persona_id in panel.answers
        eligible = [q for q in bank.questions
                    if not (from_survey and q.is_closed and q.survey_item and q.survey_item not in known)]
        linked = [q for q in eligible if q.is_closed and q.survey_item]
        first = draw(linked, min(linked_per_persona, count)) if from_survey else []
        rest = draw([q for q in eligible if q not in first], count - len(first))
        chosen = sorted(first + rest, key=lambda q: q.question_id)
        pairs += [(card.to_dict(), q) for q in chosen]
    return pairs


def teacher_request(persona: dict, question: Question, stance: str | None) -> TeacherRequest:
    """The training prompt, plus (when known) the real respondent's answer on the linked GSS item."""
    messages = build_messages(persona, question.domain, question.text, question.question_type, question.options)
    if stance is not None:
        messages = with_known_stance(messages, stance)
    return TeacherRequest.make(messages, question.options)


def plan_references(pairs: list[tuple[dict, Question]], panel: PersonaPanel
                    ) -> tuple[dict[int, str], dict[int, TeacherRequest]]:
    """Which pairs take a real respondent's answer and which need the teacher (pair index -> answer/request)."""
    real, requests = {}, {}
    for index, (persona, question) in enumerate(pairs):
        known = panel.answers.get(persona["persona_id"], {})
        stance = known.get(question.survey_item) if question.survey_item else None
        if question.is_closed and stance is not None:
            real[index] = stance
        else:
            requests[index] = teacher_request(persona, question, stance)
    return real, requests


def make_record(persona: dict, question: Question, reference: str, source: str,
                include_persona: bool = True) -> dict:
    return {
        "id": f"{persona['persona_id']}--{question.question_id}",
        "persona_id": persona["persona_id"],
        "domain": question.domain,
        "question_id": question.question_id,
        "question": question.text,
        "question_type": question.question_type,
        "options": list(question.options),
        "persona": persona,
        "messages": build_messages(persona, question.domain, question.text, question.question_type,
                                   question.options, answer=reference, include_persona=include_persona),
        "reference": reference,
        "reference_source": source,
    }


def training_respondent_records(config, exclude: set[str]) -> list[dict]:
    """Closed records of `real_answers.training_respondents` real respondents of the survey (not in `exclude`): each
    respondent's real answer to every linked item they answered, through the one prompt. Respondents are drawn
    with the persona seed; with `option_order: mixed` each record's options are in the bank's order or reversed
    (drawn with the question seed)."""
    wanted = config.real_answers.training_respondents
    if wanted == 0:
        return []
    survey = config.survey
    pool = [r for r in survey_respondents(survey, config.bank) if r.persona_id not in exclude]
    if wanted > len(pool):
        raise ValueError(f"real_answers.training_respondents: {wanted} asked, {len(pool)} {survey.title} respondents "
                         "are outside the persona panel")
    chosen = sorted(np.random.default_rng([config.seeds.persona_sample, 1]).choice(len(pool), wanted, replace=False))
    questions = linked_by_id(config.bank)
    order_rng = np.random.default_rng([config.seeds.question_sample, 1])
    mixed = config.real_answers.option_order == "mixed"
    return [record for i in chosen for record in respondent_records(pool[i], questions, mixed, order_rng)]


def survey_training_records(config, respondents) -> list[dict]:
    """A learning-curve run's training records: each respondent's real answer to every linked item they answered,
    options mixed as `real_answers.option_order` says, drawn per respondent with the question seed and the
    respondent's position (a respondent gets the same records at every point that includes them)."""
    questions = linked_by_id(config.bank)
    mixed = config.real_answers.option_order == "mixed"
    return [record for position, respondent in enumerate(respondents) for record in respondent_records(
        respondent, questions, mixed, np.random.default_rng([config.seeds.question_sample, 2, position]))]


def respondent_records(respondent, questions: dict[str, Question], mixed: bool, order_rng) -> list[dict]:
    """One closed record per linked item `respondent` answered, with their real answer; with `mixed` the options
    are in the bank's order or reversed (a coin from `order_rng` per record)."""
    records = []
    for question_id in sorted(respondent.answers):
        question = questions[question_id]
        if mixed and order_rng.random() < 0.5:
            question = dataclasses.replace(question, options=question.options[::-1])
        records.append(make_record(respondent.card, question, respondent.answers[question_id], "real_respondent"))
    return records


def check_record(record: dict) -> None:
    """The record contract; raises ValueError naming the record and field."""
    missing = [f for f in RECORD_FIELDS if f not in record]
    if missing:
        raise ValueError(f"record {record.get('id')}: missing field '{missing[0]}'")
    roles = [m["role"] for m in record["messages"]]
    if roles != ["system", "user", "assistant"] or record["messages"][-1]["content"] != record["reference"]:
        raise ValueError(f"record {record['id']}: messages must be [system, user, assistant=reference]")
    if record["reference_source"] not in REFERENCE_SOURCES:
        raise ValueError(f"record {record['id']}: unknown reference_source {record['reference_source']!r}")
    if record["options"] and record["reference"] not in record["options"] and (
            "reference_option" not in record or record["reference_option"] not in (None, *record["options"])):
        raise ValueError(f"record {record['id']}: reference is not one of its options (and no reference_option)")
