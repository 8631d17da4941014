"""The one prompt: (system, user, assistant) chat messages for a persona and a question.

Data build, training, teacher and generation all call `build_messages`; no other module writes prompt text.
"""
from __future__ import annotations

from typing import Mapping, Sequence

SYSTEM_PROMPT = (
    "You are taking part in a survey. Answer every question in the first person, as the person described "
    "in the persona card would, consistent with their background, values and views."
)
SYSTEM_PROMPT_NO_PERSONA = (
    "You are taking part in a survey. Answer every question in the first person, as a typical adult "
    "living in the United States would."
)
# The sentence the GSS says before each of its national-spending items (every linked item of the default profile).
GSS_SPENDING_PREAMBLE = ("We are faced with many problems in this country, none of which can be solved easily or "
                         "inexpensively.")
# Sentences a survey says before a whole battery of items, said by the prompt before the item's own lines (domain,
# question, options), so that a respondent's prompts on that battery share it: packed training's common root and
# the panel's scoring tree then read it once per respondent, not once per item (2.28x per-record against 1.97x
# packed without it: bench/README.md). An empty tuple asks every item whole.
SHARED_PREAMBLES: tuple[str, ...] = (GSS_SPENDING_PREAMBLE,)


def split_preamble(question: str) -> tuple[str | None, str]:
    """(the shared preamble `question` opens with, or None; the rest of the question)."""
    for preamble in SHARED_PREAMBLES:
        if question.startswith(preamble + " "):
            return preamble, question[len(preamble) + 1:]
    return None, question


def persona_card_text(persona: Mapping) -> str:
    """The persona card as the model sees it: one line per field, in a fixed order."""
    lines = []
    if persona.get("description"):
        lines.append(f"Description: {persona['description']}")
    if persona.get("age"):
        lines.append(f"Age: {persona['age']}")
    lines += [
        f"Gender: {persona['gender']}",
        f"Work: {persona['occupation']}",
        f"Education: {persona['education']}",
        f"Home: {persona['region']}",
        f"Personal income: {persona['income_bracket']}",
        f"Politics: {persona['political_identity']}",
    ]
    # Imported cards may lack a list; a card never shows an empty line
    lines += [f"{name.capitalize()}: {', '.join(persona[name])}" for name in ("values", "traits", "interests")
              if persona.get(name)]
    return "\n".join(lines)


def answer_instruction(question_type: str, options: Sequence[str]) -> str:
    if options:
        return "Answer with exactly one of these options: " + " / ".join(options) + "."
    return "Answer in two or three sentences."


def with_known_stance(messages: list[dict[str, str]], stance: str) -> list[dict[str, str]]:
    """The teacher's prompt for an open question on a GSS topic: the messages, told the respondent's real answer
    on the linked spending item so that the written answer agrees with it (never used for training or scoring)."""
    system = dict(messages[0], content=messages[0]["content"] + (
        f"\n\nIn the real survey this person said the nation spends '{stance}' on this topic. "
        "Your answer must agree with that view."))
    return [system, *messages[1:]]


def build_messages(
    persona: Mapping,
    domain: str,
    question: str,
    question_type: str,
    options: Sequence[str] = (),
    answer: str | None = None,
    include_persona: bool = True,
) -> list[dict[str, str]]:
    """[system, user] for generation, plus the assistant turn when `answer` is given (training records).

    `include_persona=False` is the persona-removed ablation: same question, no card. A question opening with one of
    `SHARED_PREAMBLES` has it said first, before the domain (the preamble, then the item's own words).
    """
    parts = []
    if include_persona:
        parts.append("Persona card:\n" + persona_card_text(persona))
    preamble, question = split_preamble(question)
    if preamble:
        parts.append(preamble)
    parts.append(f"Survey domain: {domain.replace('_', ' ')}")
    parts.append(f"Question: {question}")
    parts.append(answer_instruction(question_type, options))
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT if include_persona else SYSTEM_PROMPT_NO_PERSONA},
        {"role": "user", "content": "\n\n".join(parts)},
    ]
    if answer is not None:
        messages.append({"role": "assistant", "content": answer})
    return messages


def record_messages(record: dict, include_persona: bool = True, answer: str | None = None) -> list[dict[str, str]]:
    """A dataset record's prompt as chat messages (generation, scoring), plus `answer`'s turn when given."""
    return build_messages(record["persona"], record["domain"], record["question"], record["question_type"],
                          record["options"], answer=answer, include_persona=include_persona)


def prompt_completion(record: dict, include_persona: bool = True) -> dict:
    """A record as TRL's conversational prompt-completion example (loss on the completion only)."""
    messages = record_messages(record, include_persona, answer=record["reference"])
    return {"prompt": messages[:-1], "completion": messages[-1:]}


def closed_answer(record: dict) -> str | None:
    """The option a closed record's reference names: the reference itself, or for an imported free-text reference
    the option the study's parser found in it (`reference_option`, None when it names none); None for open ones."""
    if not record["options"]:
        return None
    if record["reference"] in record["options"]:
        return record["reference"]
    return record.get("reference_option")
