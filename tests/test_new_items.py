"""New questions: the item folds, the leakage check (no training record of a fold names a held-out item or its
wording; no item-blind reference moves with the held-out answers), the item-blind references by hand, and the
`panel_new_items` table."""
import math

import numpy as np
import pandas as pd
import pytest

from polypersona_utils.config import ConfigError, load_config, load_run
from polypersona_utils.dataset.respondents import PanelRespondent, linked_by_id
from polypersona_utils.dataset.splits import run_view
from polypersona_utils.panel.measures import with_answer_columns
from polypersona_utils.panel.new_items import item_blind_distributions, new_items_tables
from polypersona_utils.runs.new_items import fold_items, new_items_runs, point_folds
from polypersona_utils.study import StudyRun
from test_learning_curve import fake_dataset
from test_panel import VARIABLES, hand_made_frame

POINT = {"respondents": 40, "top_layers": 2}


def test_folds_cover_every_linked_item_once():
    config = load_config("default", overrides={"new_items.points": [POINT]})
    folds = fold_items(config)
    linked = [q.question_id for q in config.bank.questions if q.survey_item and q.is_closed]
    assert [len(f) for f in folds] == [2] * 5 and sorted(sum(folds, [])) == sorted(linked)
    assert fold_items(load_config("default", overrides={"seeds.split": 7})) != folds  # drawn with the split seed
    runs = new_items_runs(config)
    assert list(runs) == [f"newitems-smollm2-135m-sft-40-top2-fold{i}" for i in range(1, 6)]
    assert list(point_folds(config)) == ["newitems-smollm2-135m-sft-40-top2"]
    assert runs["newitems-smollm2-135m-sft-40-top2-fold1"]["ablation.heldout_items"] == folds[0]
    assert runs["newitems-smollm2-135m-sft-40-top2-fold1"]["ablation.respondent_pool"] == "survey"
    with pytest.raises(ConfigError, match="heldout_items: 'nope' is not a linked item"):
        load_config("smoke", overrides={"run": "x", "ablation.respondent_pool": "survey",
                                        "ablation.heldout_items": ["nope"]})
    with pytest.raises(ConfigError, match="heldout_items: only with respondent_pool: survey"):
        load_config("smoke", overrides={"run": "x", "ablation.heldout_items": folds[0]})


def test_no_training_record_of_a_fold_names_a_held_out_item_or_its_wording(tmp_roots):
    config = load_config("smoke", overrides={"new_items.points": [POINT]})
    eligible = StudyRun(config).eligible
    fake_dataset(config, [r.persona_id for r in eligible[:5]])
    questions = linked_by_id(config.bank)
    for name, overrides in new_items_runs(config).items():
        run = load_run("smoke", name, overrides)
        heldout = overrides["ablation.heldout_items"]
        records = run_view([], "train", run)
        assert records and not {r["question_id"] for r in records} & set(heldout)
        wording = [questions[q].text.split(". ")[-1] for q in heldout]  # the item's own words, past any preamble
        text = "\n".join(m["content"] for r in records for m in r["messages"])
        assert not any(words in text for words in wording), name
        panel = StudyRun(run).panel  # scored on the held-out items alone
        assert panel and all(set(r.answers) <= set(heldout) for r in panel)
        assert {q for r in panel for q in r.answers} == set(heldout)


def with_answers(real: PanelRespondent, answers: dict[str, str]) -> PanelRespondent:
    """A real respondent's card with made-up answers."""
    return PanelRespondent(real.persona_id, real.card, real.subgroups, answers)


def test_item_blind_references_by_hand_and_blind_to_the_held_out_answers():
    config = load_config("smoke")
    questions = dict(list(linked_by_id(config.bank).items())[:3])
    first, second, heldout = list(questions)
    options = list(questions[heldout].options)
    cards = StudyRun(config).eligible[:8]
    train = [with_answers(cards[i], {first: "Too little", second: "Too much" if i < 3 else "Too little",
                                     heldout: "About right"}) for i in range(6)]
    panel = [with_answers(cards[6], {heldout: "Too much"}), with_answers(cards[7], {heldout: "Too much"})]
    p0, p1 = cards[6].persona_id, cards[7].persona_id
    out = item_blind_distributions(train, panel, questions, [heldout], seed=0)
    assert set(out) == {"uniform", "pooled-marginal", "pooled-logistic"}
    assert out["uniform"][p0, heldout].tolist() == pytest.approx([1 / 3] * 3)
    # the other items' 12 answers: "Too little" 9, "About right" 0, "Too much" 3; Jeffreys +0.5 each, over 13.5
    shares = {"Too little": 9.5 / 13.5, "About right": 0.5 / 13.5, "Too much": 3.5 / 13.5}
    assert out["pooled-marginal"][p1, heldout].tolist() == pytest.approx([shares[o] for o in options])
    for key in ((p0, heldout), (p1, heldout)):
        assert out["pooled-logistic"][key].sum() == pytest.approx(1) and (out["pooled-logistic"][key] > 0).all()
    changed = [PanelRespondent(r.persona_id, r.card, r.subgroups, {**r.answers, heldout: "Too much"}) for r in train]
    again = item_blind_distributions(changed, panel, questions, [heldout], seed=0)
    for name in out:  # nothing an item-blind reference says depends on the held-out answers
        assert all(np.array_equal(out[name][k], again[name][k]) for k in out[name])


def test_panel_new_items_puts_the_model_against_the_item_blind_references():
    knows = hand_made_frame(lambda party: [0.8, 0.1, 0.1] if party == "Democrat" else [0.1, 0.1, 0.8])
    pooled = hand_made_frame(lambda party: [0.5, 0.1, 0.4]).assign(variant="pooled-marginal")
    uniform = hand_made_frame(lambda party: [1 / 3] * 3).assign(variant="uniform")
    ceiling = hand_made_frame(lambda party: [0.9, 0.05, 0.05] if party == "Democrat" else [0.05, 0.05, 0.9])
    frame = pd.concat([knows.assign(variant="m-lora"), pooled, uniform,
                       ceiling.assign(variant="baseline-logistic")], ignore_index=True)
    population = with_answer_columns(hand_made_frame(lambda party: [1.0, 0.0, 0.0]))
    worth = load_config("smoke").panel.worth
    tables = new_items_tables(with_answer_columns(frame), population, 200, 1, 5, VARIABLES, worth, 3)
    table = tables["panel_new_items"].set_index("variant")
    assert list(table.index) == ["baseline-logistic", "m-lora", "pooled-marginal", "uniform"]  # best first
    assert table.loc["baseline-logistic", "kind"].startswith("ceiling")
    assert table.loc["uniform", "kind"].startswith("reference") and table.loc["m-lora", "kind"] == "model"
    model = table.loc["m-lora"]
    # Democrats answer "Too little" (0.8 against 0.5), Republicans "Too much" (0.8 against 0.4)
    expected = (-math.log(0.8) + math.log(0.5) - math.log(0.8) + math.log(0.4)) / 2
    assert model["log_loss_minus_pooled-marginal"] == pytest.approx(expected)
    assert model["log_loss_minus_pooled-marginal_lo"] <= expected <= model["log_loss_minus_pooled-marginal_hi"]
    assert math.isnan(model["log_loss_minus_pooled-logistic"])  # not in the frame: no difference, said as none
    assert model["log_loss_minus_pooled-logistic_ci_method"] == "none"
    assert model.subgroup_effect_correlation == pytest.approx(1.0)
    assert set(tables["panel_new_items_worth"].predictor) >= {"m-lora", "pooled-marginal", "baseline-logistic"}


def test_notebook_08_reads_the_folds_scored_so_far_and_names_the_others(tmp_roots):
    """Folds are committed one by one: with only the first fold's panel results stored, the tables are made from
    its held-out pairs alone and the README names the folds not scored yet; with none, a clear error. (A constant
    predictor's intervals hold their estimate exactly: the figure draws no negative error bar.)"""
    from polypersona_utils import paths
    from polypersona_utils.panel.report import DISTRIBUTIONS_FILE, distributions_csv, panel_frame
    from polypersona_utils.panel.synthetic import subgroup_variables
    from polypersona_utils.runs.new_items import run_new_items

    config = load_config("smoke", overrides={"new_items.points": [{"respondents": 2, "top_layers": 2}]})
    run = StudyRun(config)
    fake_dataset(config, [r.persona_id for r in run.eligible[:4]])
    with pytest.raises(FileNotFoundError, match="no new-items fold of smoke has panel results yet; run make new-items"):
        run_new_items(config)
    first, second = new_items_runs(config)
    held_out = fold_items(config)[0]
    questions, panel = run.linked_questions, StudyRun(config).panel
    rows = [{"variant": variant, "persona_id": r.persona_id, "question_id": q, "options": list(questions[q].options),
             "probabilities": probabilities, "real_option": r.answers[q], "sampled_option": questions[q].options[0]}
            for r in panel for q in held_out if q in r.answers
            for variant, probabilities in (("smollm2-135m-lora", [0.5, 0.2, 0.3]), ("uniform", [1 / 3] * 3),
                                           ("pooled-marginal", [0.4, 0.3, 0.3]))]
    folder = paths.RunPaths("smoke", first).results
    folder.mkdir(parents=True)
    frame = panel_frame(rows, {r.persona_id: r for r in panel})
    (folder / DISTRIBUTIONS_FILE).write_text(distributions_csv(frame, subgroup_variables(config.survey)))
    tables = run_new_items(config)
    table = tables["panel_new_items"].set_index("variant")
    pairs = sum(1 for r in panel for q in held_out if q in r.answers)
    assert set(table.index) == {"smollm2-135m-lora", "uniform", "pooled-marginal"} and (table.pairs == pairs).all()
    assert (table.log_loss_lo <= table.log_loss).all() and (table.log_loss <= table.log_loss_hi).all()
    readme = (config.paths().results / "README.md").read_text()
    assert "1 of 2 fold runs scored so far" in readme and "Not scored yet (`make new-items` runs them" in readme
    assert f"`{second}`" in readme
    assert ("(survey items held out of its training; 1 of 2 folds scored so far) the fine-tuned panel "
            "(`newitems-smollm2-135m-sft-2-top2`) is") in readme


def test_the_verdict_says_what_the_panel_does_on_new_questions():
    """The results README's verdict carries one sentence on new questions, read off `panel_new_items`: the model's
    paired differences to the item-blind references in words, its subgroup-effect correlation, the folds scored."""
    from polypersona_utils.panel.readme import new_items_sentence

    row = {"point": "newitems-p", "variant": "m-lora", "subgroup_effect_correlation": 0.48,
           "subgroup_effect_correlation_lo": 0.41, "subgroup_effect_correlation_hi": 0.58,
           "subgroup_effect_slope": 0.036, "subgroup_effect_slope_lo": 0.025, "subgroup_effect_slope_hi": 0.048}
    for name, (value, low, high) in {"pooled-logistic": (0.109, 0.080, 0.138),
                                     "pooled-marginal": (-0.02, -0.05, 0.01)}.items():
        row |= {f"log_loss_minus_{name}": value, f"log_loss_minus_{name}_lo": low, f"log_loss_minus_{name}_hi": high}
    table = pd.DataFrame([row, {"point": "newitems-p", "variant": "uniform"}])
    sentence = new_items_sentence(table, 1, 5)
    assert sentence.startswith("On new questions (survey items held out of its training; 1 of 5 folds scored so far)")
    assert "is worse than `pooled-logistic` by +0.109 [+0.080, +0.138]" in sentence
    assert "is level with `pooled-marginal` by -0.020 [-0.050, +0.010]" in sentence
    assert "correlation there is +0.480 [+0.410, +0.580]" in sentence and "all 5 folds" in new_items_sentence(table, 5, 5)
    assert new_items_sentence(None, 0, 5) is None


def test_the_figure_draws_a_far_zero_shot_log_loss_as_an_arrow_with_its_value():
    """A zero-shot log-loss of 2.13 beside the others' 0.83 to 1.10 is an arrow at the log-loss axis' edge with its
    value written; every other row and interval stays inside; slopes (bounded) are all drawn."""
    from polypersona_utils.runs.new_items import draw_new_items

    rows = [("baseline-logistic", "ceiling", 0.83, 0.66), ("pooled-logistic", "reference", 0.89, 0.35),
            ("m-lora", "model", 0.99, 0.02), ("uniform", "reference", 1.10, 0.0), ("m-zeroshot", "model", 2.13, -0.1)]
    table = pd.DataFrame([{"point": "p", "variant": v, "kind": k, "log_loss": loss, "log_loss_lo": loss - 0.04,
                           "log_loss_hi": loss + 0.05, "subgroup_effect_slope": slope,
                           "subgroup_effect_slope_lo": slope - 0.07, "subgroup_effect_slope_hi": slope + 0.07}
                          for v, k, loss, slope in rows])
    fig = draw_new_items(table, "t")
    loss, slope = fig.axes[:2]
    low, high = loss.get_xlim()
    assert low < 0.79 and 1.15 < high < 2.0  # 0.83 - 0.04 and 1.10 + 0.05 inside; 2.13 beyond the edge
    assert [t.get_text() for t in loss.texts] == ["2.13"]
    assert "arrows: beyond the axis" in fig._suptitle.get_text()
    assert not slope.texts and slope.get_xlim()[0] < -0.17 and slope.get_xlim()[1] > 0.73


def test_a_fold_scored_on_the_panel_it_has_now_is_not_run_again(tmp_roots):
    """A fold is scored on the panel respondents who answered its held-out items: stored distributions of exactly
    those are a result; one more (or one fewer) respondent means another panel, and the fold runs again."""
    import json

    from polypersona_utils import paths
    from polypersona_utils.panel.report import result_settings
    from polypersona_utils.runs.learning_curve import missing_points

    config = load_config("smoke", overrides={"new_items.points": [POINT]})
    fake_dataset(config, [r.persona_id for r in StudyRun(config).eligible[:4]])
    runs = new_items_runs(config)
    assert missing_points(config, runs) == list(runs)
    asked = {}
    for name, overrides in runs.items():
        run = load_run("smoke", name, overrides)
        asked[name] = [r.persona_id for r in StudyRun(run).panel]
        folder = paths.RunPaths("smoke", name).results
        (folder / "provenance").mkdir(parents=True)
        (folder / "provenance" / "06_panel.json").write_text(json.dumps({"result_settings": result_settings(run)}))
        pd.DataFrame({"persona_id": asked[name]}).to_csv(folder / "panel_distributions.csv", index=False)
    assert missing_points(config, runs) == []
    first = next(iter(runs))
    everyone = [r.persona_id for r in StudyRun(config).panel]
    assert len(asked[first]) <= len(everyone)  # only those who answered the fold's held-out items
    stranger = next(pid for pid in (r.persona_id for r in StudyRun(config).eligible) if pid not in asked[first])
    pd.DataFrame({"persona_id": asked[first] + [stranger]}).to_csv(
        paths.RunPaths("smoke", first).results / "panel_distributions.csv", index=False)
    assert missing_points(config, runs) == [first]
