from collections import Counter

import pytest
import yaml

from polypersona_utils import paths
from polypersona_utils.dataset.prompts import SYSTEM_PROMPT, SYSTEM_PROMPT_NO_PERSONA, build_messages, persona_card_text
from polypersona_utils.dataset.questions import QuestionBankError, load_question_bank
from polypersona_utils.dataset.records import make_record
from polypersona_utils.dataset.surveys import load_survey

PERSONA = {
    "persona_id": "p1", "source": "file", "age": 34, "gender": "woman", "occupation": "nurse",
    "education": "bachelor's degree", "region": "lives in a city", "income_bracket": "$50,000-$74,999",
    "political_identity": "independent, moderate", "values": ["family", "honesty"],
    "traits": ["patient", "curious"], "interests": ["hiking", "cooking"], "description": "",
}


def test_bank_matches_the_papers_design():
    bank = load_question_bank(paths.QUESTION_BANK)
    assert len(bank.domains) == 10 and sum(bank.domain_quotas.values()) == 3568
    assert len(bank.questions) == 82
    types = Counter(q.question_type for q in bank.questions)
    assert types == {"open": 35, "likert": 26, "yesno": 15, "agreement": 6}  # paper: 42.7/31.7/18.3/7.3 %
    gss = load_survey("gss2018")
    linked_closed = {q.survey_item for q in bank.questions if q.survey_item and q.is_closed}
    assert linked_closed == set(gss.items)
    for q in bank.questions:
        if q.survey_item and q.is_closed:
            assert q.options == ("Too little", "About right", "Too much")


def bank_with(tmp_path, question):
    data = yaml.safe_load(paths.QUESTION_BANK.read_text())
    data["questions"][0] = question
    path = tmp_path / "bank.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("question, message", [
    ({"id": "dem_01", "domain": "demographics", "type": "open"}, "field 'text' is missing"),
    ({"id": "dem_01", "domain": "nowhere", "type": "open", "text": "Q?"}, "field 'domain'"),
    ({"id": "dem_01", "domain": "demographics", "type": "likert", "text": "Q?", "options": "nope"},
     "field 'options'"),
    ({"id": "dem_01", "domain": "demographics", "type": "open", "text": "Q?", "options": "yesno"},
     "open questions have no options"),
    ({"id": "dem_01", "domain": "demographics", "type": "yesno", "text": "Q?", "options": "yesno",
      "survey_item": 7}, "field 'survey_item'"),
    ({"id": "dem_01", "domain": "demographics", "type": "open", "text": "Q?", "colour": "red"}, "unknown field"),
])
def test_malformed_bank_names_question_and_field(tmp_path, question, message):
    with pytest.raises(QuestionBankError, match=message) as err:
        load_question_bank(bank_with(tmp_path, question))
    assert "question 0 (dem_01)" in str(err.value)


def test_messages_carry_card_domain_question_and_options():
    messages = build_messages(PERSONA, "social_issues", "Is it fair?", "yesno", ("Yes", "No"))
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == SYSTEM_PROMPT
    user = messages[1]["content"]
    assert persona_card_text(PERSONA) in user
    assert "Survey domain: social issues" in user and "Question: Is it fair?" in user
    assert user.endswith("Answer with exactly one of these options: Yes / No.")


def test_answer_becomes_the_assistant_turn_and_persona_can_be_removed():
    with_answer = build_messages(PERSONA, "finance", "How do you save?", "open", answer="I save monthly.")
    assert with_answer[-1] == {"role": "assistant", "content": "I save monthly."}
    assert with_answer[:2] == build_messages(PERSONA, "finance", "How do you save?", "open")
    bare = build_messages(PERSONA, "finance", "How do you save?", "open", include_persona=False)
    assert bare[0]["content"] == SYSTEM_PROMPT_NO_PERSONA
    assert "nurse" not in bare[1]["content"] and "Question: How do you save?" in bare[1]["content"]


def test_card_lists_every_field_in_fixed_order():
    text = persona_card_text(PERSONA)
    assert text.splitlines() == [
        "Age: 34", "Gender: woman", "Work: nurse", "Education: bachelor's degree", "Home: lives in a city",
        "Personal income: $50,000-$74,999", "Politics: independent, moderate", "Values: family, honesty",
        "Traits: patient, curious", "Interests: hiking, cooking",
    ]


def test_records_use_the_one_prompt_function():
    bank = load_question_bank(paths.QUESTION_BANK)
    question = next(q for q in bank.questions if q.question_type == "agreement")
    record = make_record(PERSONA, question, question.options[3], "teacher")
    assert record["messages"] == build_messages(PERSONA, question.domain, question.text, question.question_type,
                                                question.options, answer=question.options[3])
    assert record["id"] == f"p1--{question.question_id}"


def test_an_option_set_given_twice_is_an_error_not_the_last_one_silently(tmp_path):
    text = paths.QUESTION_BANK.read_text()
    line = next(l for l in text.splitlines() if l.startswith("  frequency5:"))
    path = tmp_path / "bank.yaml"
    path.write_text(text.replace(line, line + "\n  frequency5: [Always, Often, Sometimes, Rarely, Never]"))
    with pytest.raises(QuestionBankError, match=r"bank.yaml: .*duplicate key 'frequency5' \(first on line 20\)"):
        load_question_bank(path)


def test_a_shared_preamble_is_said_before_the_items_own_lines(monkeypatch):
    """A listed preamble (the GSS's sentence before its spending items) comes first, so that one respondent's
    prompts share it; the item's own words follow as its question (the study lists the GSS's). A question without
    it is asked word for word, and so is every question while none is listed."""
    from polypersona_utils.dataset import prompts

    preamble = prompts.GSS_SPENDING_PREAMBLE
    assert prompts.SHARED_PREAMBLES == (preamble,)
    with monkeypatch.context() as unlisted:
        unlisted.setattr(prompts, "SHARED_PREAMBLES", ())
        whole = build_messages(PERSONA, "healthcare", f"{preamble} Are we?", "likert", ("A", "B"))[1]["content"]
        assert f"Survey domain: healthcare\n\nQuestion: {preamble} Are we?" in whole
    item = "Are we spending too much money, too little money, or about the right amount on the nation's health?"
    user = build_messages(PERSONA, "healthcare", f"{preamble} {item}", "likert", ("Too little", "Too much"))[1]["content"]
    assert user == ("Persona card:\n" + persona_card_text(PERSONA) + f"\n\n{preamble}\n\nSurvey domain: healthcare"
                    f"\n\nQuestion: {item}\n\nAnswer with exactly one of these options: Too little / Too much.")
    other = build_messages(PERSONA, "finance", "Is it fair?", "yesno", ("Yes", "No"))[1]["content"]
    assert other == ("Persona card:\n" + persona_card_text(PERSONA) + "\n\nSurvey domain: finance\n\nQuestion: Is it "
                     "fair?\n\nAnswer with exactly one of these options: Yes / No.")
    glued = build_messages(PERSONA, "finance", preamble + "x?", "open")[1]["content"]  # not the sentence alone
    assert f"Survey domain: finance\n\nQuestion: {preamble}x?" in glued
