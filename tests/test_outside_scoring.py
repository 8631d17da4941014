"""Any model's panel scored from a file beside the committed variants (`make score-panel`), and its template."""
import json

import numpy as np
import pandas as pd
import pytest

from polypersona_utils.cli import main
from polypersona_utils.panel.files import read_panel_file
from polypersona_utils.user_files import UserFileError

SPENDING = ["Too little", "About right", "Too much"]


@pytest.fixture
def stored_panel(tmp_roots):
    """A smoke workspace holding a stored panel: 40 GSS respondents of the survey, two linked items, two variants."""
    from polypersona_utils.config import load_config
    from polypersona_utils.dataset.questions import load_question_bank
    from polypersona_utils.dataset.respondents import linked_questions, survey_respondents
    from polypersona_utils.dataset.surveys import load_survey
    from polypersona_utils.panel.report import DISTRIBUTIONS_FILE, distributions_csv

    config = load_config("smoke", overrides={"metrics.bootstrap_samples": 100})
    survey = load_survey(config.personas.survey)
    items = [q.question_id for q in linked_questions(load_question_bank(config.questions.bank_path))][:2]
    people = [r for r in survey_respondents(survey, config.bank)
              if all(q in r.answers for q in items)][:40]
    rows = []
    for variant, p in (("smollm2-135m-lora", [0.5, 0.3, 0.2]), ("baseline-population", [0.4, 0.4, 0.2])):
        for r in people:
            for q in items:
                rows.append({"variant": variant, "persona_id": r.persona_id, "question_id": q, "options": SPENDING,
                             "probabilities": p, "real_option": r.answers[q], "sampled_option": "About right",
                             "age_band": "30-44", "gender": r.card["gender"], "education": "x",
                             "party": "Democrat" if len(rows) % 4 < 2 else "Republican", "ideology": "moderate",
                             "race": "white"})
    where = config.paths()
    where.results.mkdir(parents=True)
    variables = ("age_band", "gender", "education", "party", "ideology", "race")
    (where.results / DISTRIBUTIONS_FILE).write_text(distributions_csv(pd.DataFrame(rows), variables))
    return config, people, items


def test_the_template_lists_every_pair_with_card_and_question(stored_panel, tmp_path):
    config, people, items = stored_panel
    assert main(["panel-template", "smoke", str(tmp_path / "template.csv")]) == 0
    template = pd.read_csv(tmp_path / "template.csv", keep_default_na=False)
    assert len(template) == len(people) * len(items) and set(template.probabilities) == {""}
    first = json.loads(template.card.iloc[0])
    assert first["persona_id"] == people[0].persona_id and "political_identity" in first
    assert (template.options == "|".join(SPENDING)).all() and template.question.str.len().min() > 10


def filled(template: pd.DataFrame, probabilities) -> pd.DataFrame:
    return template.assign(probabilities=["|".join(f"{x:.6f}" for x in probabilities(i)) for i in range(len(template))])


def test_a_filled_template_is_scored_beside_the_committed_variants(stored_panel, tmp_path):
    config, people, items = stored_panel
    main(["panel-template", "smoke", str(tmp_path / "template.csv")])
    template = pd.read_csv(tmp_path / "template.csv", keep_default_na=False)
    filled(template, lambda i: [0.2, 0.5, 0.3]).to_csv(tmp_path / "mine.csv", index=False)
    assert main(["score-panel", "smoke", str(tmp_path / "mine.csv"), "my-model"]) == 0
    out = config.paths().results / "scored-panels" / "my-model"
    individual = pd.read_csv(out / "tables" / "panel_individual.csv").set_index("variant")
    assert {"my-model", "smollm2-135m-lora", "baseline-population"} <= set(individual.index)
    # by hand: the mean of -log p(real answer) under [0.2, 0.5, 0.3]
    real = [r.answers[q] for r in people for q in items]
    expected = np.mean([-np.log([0.2, 0.5, 0.3][SPENDING.index(a)]) for a in real])
    assert individual.loc["my-model", "log_loss"] == pytest.approx(expected, abs=1e-4)
    assert "my-model" in set(pd.read_csv(out / "tables" / "panel_paired.csv").variant)
    assert "## Verdict" in (out / "README.md").read_text()
    assert json.loads((out / "provenance.json").read_text())["variant"] == "my-model"


@pytest.mark.parametrize("edit, message", [
    (lambda t: t.iloc[1:], r"1 pair\(s\) of the panel have no row"),
    (lambda t: pd.concat([t, t.iloc[:1]]), r"line \d+: fields 'persona_id', 'question_id': .* is also on line 2"),
    (lambda t: t.assign(options=["About right|Too little|Too much"] + list(t.options[1:])),
     r"line 2: field 'options': .* is not the bank's"),
    (lambda t: t.assign(probabilities=["0.5|0.5|0.1"] + list(t.probabilities[1:])), r"line 2: field 'probabilities'"),
    (lambda t: t.assign(probabilities=["nan|0.5|0.5"] + list(t.probabilities[1:])), r"line 2: field 'probabilities'"),
    (lambda t: t.assign(persona_id=["someone"] + list(t.persona_id[1:])), r"line 2: .*is not a pair of the"),
])
def test_a_malformed_file_is_refused_with_line_and_field_and_nothing_written(stored_panel, tmp_path, capsys, edit,
                                                                            message):
    config, _, _ = stored_panel
    main(["panel-template", "smoke", str(tmp_path / "template.csv")])
    template = filled(pd.read_csv(tmp_path / "template.csv", keep_default_na=False), lambda i: [0.2, 0.5, 0.3])
    edit(template).to_csv(tmp_path / "mine.csv", index=False)
    assert main(["score-panel", "smoke", str(tmp_path / "mine.csv"), "my-model"]) == 2
    import re
    assert re.search(message, capsys.readouterr().err)
    assert not (config.paths().results / "scored-panels").exists()


@pytest.mark.parametrize("name", ["baseline-population", "..", ".", "a/b"])
def test_a_name_the_study_uses_or_that_leaves_its_folder_is_refused(stored_panel, tmp_path, capsys, name):
    config, _, _ = stored_panel
    main(["panel-template", "smoke", str(tmp_path / "template.csv")])
    template = filled(pd.read_csv(tmp_path / "template.csv", keep_default_na=False), lambda i: [0.2, 0.5, 0.3])
    template.to_csv(tmp_path / "mine.csv", index=False)
    assert main(["score-panel", "smoke", str(tmp_path / "mine.csv"), name]) == 2
    assert "not a name the study uses" in capsys.readouterr().err
    assert not (config.paths().results / "scored-panels").exists() and not (config.paths().results / "tables").exists()


def test_probabilities_written_to_six_decimals_are_accepted_and_renormalised(tmp_path):
    rows = [{"persona_id": "p1", "question_id": "q1", "options": "|".join(SPENDING),
             "probabilities": "0.333333|0.333333|0.333333"}]
    pd.DataFrame(rows).to_csv(tmp_path / "panel.csv", index=False)
    frame = read_panel_file(tmp_path / "panel.csv", tolerance=1e-6)
    assert sum(frame.probabilities.iloc[0]) == pytest.approx(1.0, abs=1e-15)
    rows[0]["probabilities"] = "0.3333|0.3333|0.3333"  # off by 1e-4: not a rounding of 6 decimals
    pd.DataFrame(rows).to_csv(tmp_path / "panel.csv", index=False)
    with pytest.raises(UserFileError, match="line 2: field 'probabilities'"):
        read_panel_file(tmp_path / "panel.csv", tolerance=1e-6)


def test_json_lines_with_lists_read_like_the_csv(tmp_path):
    rows = [{"persona_id": "p1", "question_id": "q1", "options": SPENDING, "probabilities": [0.2, 0.3, 0.5]}]
    (tmp_path / "panel.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    frame = read_panel_file(tmp_path / "panel.jsonl")
    assert frame.options.iloc[0] == tuple(SPENDING) and frame.probabilities.iloc[0] == [0.2, 0.3, 0.5]
    (tmp_path / "bad.jsonl").write_text(json.dumps({**rows[0], "probabilities": [0.2, 0.3]}) + "\n")
    with pytest.raises(UserFileError, match=r"bad.jsonl: line 1: field 'probabilities'"):
        read_panel_file(tmp_path / "bad.jsonl")
