import json
import re
import subprocess
import sys

import pytest

from polypersona_utils.dataset import personas
from polypersona_utils.dataset.personas import PersonaCard, PersonaError, file_panel, survey_panel
from polypersona_utils.dataset.surveys import load_survey

GSS = load_survey("gss2018")
DEGREE = GSS.variables["degree_text"].labels


def gss2018_panel(n, seed):
    return survey_panel(GSS, n, seed)

from conftest import FIXTURES


def test_gss_panel_keeps_each_respondents_real_demographics():
    panel = gss2018_panel(25, seed=7)
    sample = GSS.frame.set_index("id")
    for card in panel.cards:
        row = sample.loc[int(card.persona_id.split("-")[1])]
        assert card.age == int(row["age"])
        assert card.gender == ("woman" if row["sex"] == 1 else "man")
        assert card.education == DEGREE[int(row["degree"])]
        assert len(card.values) == len(card.traits) == len(card.interests) == 2


def test_gss_answers_are_real_and_missing_ones_are_not_invented():
    panel = gss2018_panel(40, seed=3)
    sample = GSS.frame.set_index("id")
    missing_seen = False
    for card in panel.cards:
        row = sample.loc[int(card.persona_id.split("-")[1])]
        answers = panel.answers[card.persona_id]
        for item in GSS.items:
            if row[item] != row[item]:  # NaN: not asked of this respondent
                assert item not in answers
                missing_seen = True
            else:
                assert answers[item] == {1: "Too little", 0: "About right", -1: "Too much"}[int(row[item])]
    assert missing_seen  # the GSS asks each item of a subsample, so 40 respondents include gaps


def test_gss_panel_is_seeded_and_without_replacement():
    a, b, c = gss2018_panel(30, 1), gss2018_panel(30, 1), gss2018_panel(30, 2)
    assert [x.to_dict() for x in a.cards] == [x.to_dict() for x in b.cards]
    assert [x.persona_id for x in a.cards] != [x.persona_id for x in c.cards]
    assert len({x.persona_id for x in a.cards}) == 30


CARD_ITEMS = ("natspac", "natarms", "nataid", "natpark", "natrace", "natcity", "natdrug", "natroad")


def test_derived_fields_follow_the_documented_rules():
    row = {"id": 1, "age": 70, "sex": 1, "degree": 4, "wrkstat": 5, "xnorcsiz": 10, "rincom16": None, "race": 1,
           "partyid": 3, "polviews": 4, "news": 1, **{i: None for i in CARD_ITEMS}}
    row.update(natrace=1, natarms=-1, natspac=1)
    card = PersonaCard(**GSS.card_of(row))
    assert card.values == ["racial equality", "peace and diplomacy"]
    assert card.traits == ["even-handed", "independent-minded"]
    assert card.interests == ["space exploration", "newspapers and current affairs"]
    assert card.income_bracket == "not reported" and card.region.startswith("lives in the open countryside")
    quiet = dict(row, natrace=None, natarms=None, natspac=None, polviews=None, partyid=None, news=None,
                 wrkstat=8, degree=1, age=40)
    card = PersonaCard(**GSS.card_of(quiet))
    assert card.values == ["fairness", "family"] and card.interests == ["television", "local community events"]
    assert card.political_identity == "not reported, ideology not reported" and card.occupation == "other work status"
    assert card.region == "lives in the open countryside in the United States" and card.age == 40
    # three or more "too much" on the card items: the counting rule fires
    thrifty = PersonaCard(**GSS.card_of(dict(quiet, natspac=-1, nataid=-1, natroad=-1)))
    assert "careful with public money" in thrifty.traits


def test_csv_panel_loads():
    panel = file_panel(FIXTURES / "panel.csv")
    assert [c.persona_id for c in panel.cards] == ["nurse-01", "farmer-02", "student-03"]
    assert panel.cards[0].values == ["family", "honesty"] and panel.cards[1].age == 61


def rows(**change):
    base = {"persona_id": "a", "age": 40, "gender": "man", "occupation": "cook", "education": "none",
            "region": "a town", "income_bracket": "low", "political_identity": "none",
            "values": ["x", "y"], "traits": ["x", "y"], "interests": ["x", "y"]}
    return [base, {**base, "persona_id": "b", **change}]


@pytest.mark.parametrize("change, message", [
    ({"gender": ""}, "line 2: field 'gender' missing or empty"),
    ({"age": "forty"}, "line 2: field 'age' must be a whole number"),
    ({"age": 7}, "line 2: field 'age' must be between 18 and 120"),
    ({"values": ["only one"]}, "line 2: field 'values' must hold exactly two"),
    ({"persona_id": "a"}, "line 2: field 'persona_id': duplicate 'a'"),
    ({"shoe_size": 44}, "line 2: unknown field 'shoe_size'"),
])
def test_malformed_jsonl_panel_names_row_and_field(tmp_path, change, message):
    path = tmp_path / "panel.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows(**change)))
    with pytest.raises(PersonaError, match=message):
        file_panel(path)


def test_malformed_csv_row_is_numbered_as_in_the_file(tmp_path):
    lines = (FIXTURES / "panel.csv").read_text().splitlines()
    lines[3] = lines[3].replace(",in school,", ",,")
    path = tmp_path / "panel.csv"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(PersonaError, match=r"line 4: field 'occupation' missing"):
        file_panel(path)


def test_personahub_fixture_becomes_cards():
    fixture = [json.loads(l) for l in (FIXTURES / "personahub_sample.jsonl").read_text().splitlines()]
    panel = personas.personahub_panel(3, seed=1, dataset="x", config="persona", revision="r", rows=fixture)
    assert len(panel.cards) == 3 and all(c.description for c in panel.cards)
    assert {c.description for c in panel.cards} <= {r["persona"] for r in fixture}


def test_personahub_offline_fails_with_a_clear_message():
    code = ("from polypersona_utils.dataset.personas import personahub_panel\n"
            "personahub_panel(3, 1, 'proj-persona/PersonaHub', 'persona', 'main')")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            env={"HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert result.returncode != 0
    assert "PersonaError: PersonaHub (proj-persona/PersonaHub" in result.stderr
    # The real failure is named, not guessed.
    assert re.search(r"could not be loaded: \w+: ", result.stderr) and "Offline, use" in result.stderr
