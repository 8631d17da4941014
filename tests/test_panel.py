"""The synthetic panel: option scoring with shared prefixes equals plain forwards, order averaging, the scoring model
equals base + adapter, the references, and the tables on hand-made distributions whose numbers are known."""
import math

import numpy as np
import pandas as pd
import pytest

from polypersona_utils import paths
from polypersona_utils.dataset.prompts import build_messages, split_preamble
from polypersona_utils.dataset.respondents import PanelRespondent
from polypersona_utils.panel.measures import bootstrap_weights, panel_individual, panel_tables, with_answer_columns
from polypersona_utils.panel.synthetic import order_effect, respondent_distributions, sampled_option
from polypersona_utils.study import StudyRun

CARD = {"persona_id": "gss2018-0001", "age": 40, "gender": "woman", "occupation": "works full time",
        "education": "bachelor's degree", "region": "lives in a city", "income_bracket": "$50,000-$74,999",
        "political_identity": "Democrat, liberal", "values": ["a", "b"], "traits": ["c", "d"],
        "interests": ["e", "f"]}
SPENDING = ["Too little", "About right", "Too much"]
VARIABLES = ("age_band", "gender", "education", "party", "ideology", "race")  # GSS 2018: subgroup_variables


def test_shared_prefix_scores_equal_one_full_forward_per_option(tiny_model_dir):
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    from polypersona_utils.llm.option_scoring import full_forward_log_probs, option_log_probs

    # Weights drawn wide (the saved tiny model's are near zero, so every position would give almost the same
    # log-probabilities and a wrong position or mask would go unseen).
    config = AutoConfig.from_pretrained(tiny_model_dir)
    config.initializer_range = 0.5
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    questions = [("health", "Is the nation spending too little, about right or too much on health?", SPENDING),
                 ("education", "And on improving the nation's education system?", list(reversed(SPENDING))),
                 ("environment", "Environment?", ["Yes", "No", "Maybe so"])]
    chats = [build_messages(CARD, d, q, "likert", o) for d, q, o in questions]
    shared = option_log_probs(model, tokenizer, chats, [o for _, _, o in questions])
    for chat, (_, _, options), scores in zip(chats, questions, shared):
        assert scores == pytest.approx(full_forward_log_probs(model, tokenizer, chat, options), abs=1e-3)
    assert np.ptp(shared) > 1  # options are told apart, so a wrong position or mask would show
    # Grouped as the panel asks them: a question in both option orders shares its words; a group of one shares none.
    asked = [(d, q, o) for d, q, o in questions[:2] for o in (o, list(reversed(o)))] + [questions[2]]
    chats = [build_messages(CARD, d, q, "likert", o) for d, q, o in asked]
    grouped = option_log_probs(model, tokenizer, chats, [o for _, _, o in asked], groups=["h", "h", "e", "e", "x"])
    for chat, (_, _, options), scores in zip(chats, asked, grouped):
        assert scores == pytest.approx(full_forward_log_probs(model, tokenizer, chat, options), abs=1e-3)


def test_order_averaging_cancels_a_pure_position_preference(monkeypatch):
    """A 'model' that only likes the first listed option: in the given order it picks option 1, reversed option 3;
    the average is symmetric and the order effect is the whole distance."""
    import polypersona_utils.panel.synthetic as synthetic

    monkeypatch.setattr(synthetic, "option_log_probs",
                        lambda model, tok, chats, options, groups=None: [[5.0, 0.0, 0.0] for _ in chats])
    question = type("Q", (), {"options": tuple(SPENDING), "domain": "health", "text": "Q?", "question_type": "likert"})
    respondent = PanelRespondent("gss2018-0001", CARD, {"race": "white"}, {"q1": "Too little"})
    given, reversed_ = respondent_distributions(None, None, respondent, {"q1": question}, True)["q1"]
    p = math.exp(5) / (math.exp(5) + 2)
    assert given == pytest.approx([p, (1 - p) / 2, (1 - p) / 2])
    assert reversed_ == pytest.approx([(1 - p) / 2, (1 - p) / 2, p])
    mean = (given + reversed_) / 2
    assert mean[0] == pytest.approx(mean[2])
    row = {"probabilities_given_order": list(given), "probabilities_reversed_order": list(reversed_)}
    assert order_effect([row]) == pytest.approx(0.5 * (2 * abs(p - (1 - p) / 2)))


def test_the_order_effect_table_has_a_row_per_scored_variant_and_served_models_unparseable_share():
    from polypersona_utils.panel.report import order_effect_table

    local = [{"probabilities_given_order": [0.6, 0.4], "probabilities_reversed_order": [0.4, 0.6]},
             {"probabilities_given_order": [1.0, 0.0], "probabilities_reversed_order": [1.0, 0.0]}]
    served = [dict(local[0], scored_by="samples", unparseable_samples=3, bounded_options=0, options=["a", "b"]),
              dict(local[1], scored_by="samples", unparseable_samples=1, bounded_options=0, options=["a", "b"])]
    exact = [dict(row, scored_by="tokens", unparseable_samples=0, bounded_options=n) for row, n in zip(served, (1, 0))]
    table = order_effect_table({"local": local, "served": served, "exact": exact}, http_samples=5).set_index("variant")
    assert table.mean_total_variation.tolist() == pytest.approx([0.1, 0.1, 0.1])  # (0.2 + 0) / 2 each
    assert table.loc["served", "unparseable_sample_share"] == pytest.approx(4 / (2 * 5 * 2))
    assert np.isnan(table.loc["local", "unparseable_sample_share"])  # a local model samples nothing
    assert np.isnan(table.loc["exact", "unparseable_sample_share"]) and np.isnan(table.loc["served",
                                                                                       "bounded_option_share"])
    assert table.loc["exact", "bounded_option_share"] == pytest.approx(1 / (2 * 2 * 2))  # of 2 orders x 2 options
    assert table.loc["exact", "served_by"] == "tokens" and table.loc["served", "served_by"] == "samples"
    assert "unparseable_sample_share" not in order_effect_table({"local": local}, http_samples=5)

def test_sampled_answers_are_seeded_and_follow_the_temperature():
    draws = [sampled_option([0.6, 0.3, 0.1], SPENDING, 1.0, (7, i, 0)) for i in range(2000)]
    assert draws == [sampled_option([0.6, 0.3, 0.1], SPENDING, 1.0, (7, i, 0)) for i in range(2000)]
    assert draws.count("Too little") / 2000 == pytest.approx(0.6, abs=0.04)
    assert sampled_option([0.4, 0.35, 0.25], SPENDING, 0.0, (1,)) == "Too little"  # temperature 0: the mode


def hand_made_frame(probabilities_of, people=40):
    """Respondents alternate Democrat / Republican; Democrats answer "Too little", Republicans "Too much"."""
    rows = []
    for i in range(people):
        party = "Democrat" if i % 2 == 0 else "Republican"
        real = "Too little" if party == "Democrat" else "Too much"
        for qid in ("q1", "q2"):
            rows.append({"variant": "model", "persona_id": f"p{i:03d}", "question_id": qid, "options": SPENDING,
                         "probabilities": probabilities_of(party), "real_option": real, "age_band": "30-44",
                         "gender": "woman" if i % 4 < 2 else "man", "education": "x", "party": party,
                         "ideology": "moderate", "race": "white"})
    return pd.DataFrame(rows)


def test_a_model_that_knows_the_parties_scores_as_computed_by_hand():
    knows = hand_made_frame(lambda party: [0.8, 0.1, 0.1] if party == "Democrat" else [0.1, 0.1, 0.8])
    population = hand_made_frame(lambda party: [1.0, 0.0, 0.0])  # only its real answers are read
    tables = panel_tables(with_answer_columns(knows), with_answer_columns(population), samples=200, seed=1, min_respondents=5, variables=VARIABLES)
    individual = tables["panel_individual"].set_index("variant").loc["model"]
    assert individual.log_loss == pytest.approx(-math.log(0.8))
    assert individual.accuracy == 1.0 and individual.log_loss_lo <= individual.log_loss <= individual.log_loss_hi
    alignment = tables["panel_alignment"].set_index(["variant", "variable", "category"])
    model_rows = alignment.loc["model"]  # resampling lowers the alignment: BCa (or its fallback) holds the estimate
    assert ((model_rows.alignment_lo <= model_rows.alignment + 1e-9)
            & (model_rows.alignment <= model_rows.alignment_hi + 1e-9)).all()
    assert set(model_rows.alignment_ci_method) <= {"BCa", "normal", "constant"}
    # Democrats: mean [0.8, 0.1, 0.1] against real [1, 0, 0]: W1 = 0.2 + 0.1 = 0.3 of a maximum 2.
    assert alignment.loc[("model", "party", "Democrat"), "alignment"] == pytest.approx(1 - 0.3 / 2)
    # Whole panel: mean [0.45, 0.1, 0.45] against real [0.5, 0, 0.5]: W1 = 0.05 + 0.05 = 0.1.
    assert alignment.loc[("model", "all", "all"), "alignment"] == pytest.approx(1 - 0.1 / 2)
    # The human ceiling: two disjoint halves of real people of the group. Every Democrat answers "Too little",
    # so any two samples of Democrats agree; the whole population is half each way, so two halves of 20 of its 40
    # people differ unless both draw 10 of each party.
    human = alignment.loc["human-split-half"]
    assert human.loc[("party", "Democrat"), ["respondents", "alignment", "js_distance"]].tolist() == [10, 1.0, 0.0]
    assert human.loc[("all", "all"), "respondents"] == 20 and 0.5 < human.loc[("all", "all"), "alignment"] < 1
    assert set(human.alignment_ci_method) == {"percentile of 20 splits"}  # every interval says how it was made
    effects = tables["panel_effects"].set_index("variant").loc["model"]
    assert effects.correlation == pytest.approx(1.0) and effects.slope == pytest.approx(0.7)
    assert effects.slope_lo <= effects.slope <= effects.slope_hi  # BCa: the interval holds its estimate
    # SubPOP's unit: 1 - alignment over subgroup rows, weighted by items; by party the model is 0.15 off each group
    units = tables["panel_subpop_units"].set_index("variant")
    by_party = alignment.loc["model"].loc["party"]
    assert by_party.alignment.tolist() == pytest.approx([0.85, 0.85])
    model_rows = alignment.loc["model"].drop(index="all", level=0)
    assert units.loc["model", "wasserstein_per_option_gap"] == pytest.approx(
        np.average(1 - model_rows.alignment, weights=model_rows["items"]))
    assert units.loc["human-split-half", "cells"] > 0
    blind = hand_made_frame(lambda party: [0.45, 0.1, 0.45])
    blind_effects = panel_tables(with_answer_columns(blind), with_answer_columns(population), 200, 1, 5, VARIABLES)["panel_effects"].set_index("variant").loc["model"]
    assert blind_effects.slope == pytest.approx(0.0, abs=1e-9)  # a persona-blind panel recovers no effect


def test_alignment_of_stacked_rows_is_the_alignment_of_each_and_bootstrap_weights_resample_people():
    from polypersona_utils.evaluation.metrics import wasserstein_alignment

    p, q = np.array([0.2, 0.5, 0.3]), np.array([0.6, 0.1, 0.3])
    # by hand: cumulative 0.2, 0.7 against 0.6, 0.7: W1 = 0.4 of a maximum 2
    assert wasserstein_alignment(p, q) == pytest.approx(1 - 0.4 / 2)
    stacked = wasserstein_alignment(np.stack([p, q, p]), np.stack([q, q, p]))
    assert stacked == pytest.approx([1 - 0.4 / 2, 1.0, 1.0])
    weights = bootstrap_weights(5, 100, seed=3)
    assert weights.shape == (100, 5) and (weights.sum(axis=1) == 5).all()
    assert (weights == bootstrap_weights(5, 100, seed=3)).all()


def test_log_loss_of_a_zero_probability_is_finite():
    frame = with_answer_columns(hand_made_frame(lambda party: [0.0, 1.0, 0.0], people=4))
    assert np.isfinite(panel_individual(frame, 50, 0).log_loss).all()


def test_references_fit_on_training_respondents_only():
    from polypersona_utils.panel.references import reference_distributions

    def person(i, party, answer):
        card = {**CARD, "persona_id": f"p{i}", "political_identity": f"{party}, moderate"}
        return PanelRespondent(f"p{i}", card, "white", {"q1": answer})

    train = [person(i, "Democrat" if i % 2 else "Republican", "Too little" if i % 2 else "Too much")
             for i in range(40)]
    panel = [person(100, "Democrat", "Too much"), person(101, "Republican", "Too little")]
    question = type("Q", (), {"options": tuple(SPENDING)})
    out = reference_distributions(train, panel, {"q1": question}, cell_smoothing=2.0)
    population = out["baseline-population"]["p100", "q1"]
    assert population == pytest.approx([20.5 / 41.5, 0.5 / 41.5, 20.5 / 41.5])  # Jeffreys-smoothed shares
    cell = out["baseline-cell-smoothed"]["p100", "q1"]  # 20 Democrats in the cell, all "Too little"
    assert cell == pytest.approx((np.array([20, 0, 0]) + 2 * population) / 22)
    # untuned (40 respondents: the middle of the grid, C = 0.3), yet far from the marginal 0.49
    assert out["baseline-logistic"]["p100", "q1"][0] > 0.7 and out["baseline-logistic"]["p101", "q1"][2] > 0.7


def test_the_fitted_references_read_the_cards_lists_and_only_their_own_respondents_answers():
    """Only the card's values carry the answer (everyone is a Democrat in one cell): the full-card logistic
    regression and boosting learn it, the demographic cell cannot; the anchors learn from their pool alone, and
    the panel's own answers never enter (the same probabilities whatever the panel answered)."""
    from polypersona_utils.panel.references import reference_distributions

    def person(i, value, answer):
        card = {**CARD, "persona_id": f"p{i}", "values": [value, "b"]}
        return PanelRespondent(f"p{i}", card, "white", {"q1": answer})

    train = [person(i, "thrift" if i % 2 else "fairness", "Too much" if i % 2 else "Too little") for i in range(60)]
    pool = [person(200 + i, "thrift" if i % 2 else "fairness", "Too little" if i % 2 else "Too much")
            for i in range(60)]  # the opposite rule: what the anchors must learn
    question = type("Q", (), {"options": tuple(SPENDING)})

    def fitted(panel_answers):
        panel = [person(100, "thrift", panel_answers[0]), person(101, "fairness", panel_answers[1])]
        return reference_distributions(train, panel, {"q1": question}, 2.0, seed=0, anchor_pool=pool)

    out = fitted(["Too much", "Too little"])
    for variant in ("baseline-logistic", "baseline-boosting"):
        assert out[variant]["p100", "q1"][2] > 0.7 and out[variant]["p101", "q1"][0] > 0.7, variant
    for variant in ("anchor-logistic-all", "anchor-boosting-all"):
        assert out[variant]["p100", "q1"][0] > 0.7 and out[variant]["p101", "q1"][2] > 0.7, variant
    assert out["baseline-cell-smoothed"]["p100", "q1"] == pytest.approx(out["baseline-cell-smoothed"]["p101", "q1"])
    other = fitted(["About right", "About right"])
    assert all(np.array_equal(out[v][k], other[v][k]) for v in out for k in out[v])


def test_reference_tuning_chooses_by_cross_validation_and_falls_back_when_it_cannot():
    from polypersona_utils.panel.references import LOGISTIC_C, fit_classifier

    rng = np.random.default_rng(0)
    x = rng.integers(0, 2, size=(80, 6)).astype(float)
    noise = fit_classifier("logistic", x, rng.integers(0, 3, 80), seed=0).C_  # answers unrelated to the card
    signal = fit_classifier("logistic", x, (x[:, 0] + x[:, 1]).astype(int), seed=0).C_
    assert noise in LOGISTIC_C and signal in LOGISTIC_C and noise < signal  # pure noise: the strongest penalty
    few = fit_classifier("logistic", x[:40], (x[:40, 0] + x[:40, 1]).astype(int), seed=0)  # too few to tune
    assert few.C == LOGISTIC_C[len(LOGISTIC_C) // 2] and not hasattr(few, "C_")
    assert fit_classifier("boosting", x, np.zeros(80, int), seed=0) is None  # one answer: nothing to fit


def test_the_held_out_panel_excludes_the_datasets_personas(smoke_data):
    from polypersona_utils.config import load_config, load_run
    from polypersona_utils.dataset.respondents import draw_respondents
    from polypersona_utils.dataset.splits import dataset_persona_ids

    config = load_config("smoke")
    run = StudyRun(config)
    excluded = dataset_persona_ids(config.paths().data)
    panel = run.panel
    assert len(panel) == config.panel.respondents and not {r.persona_id for r in panel} & excluded
    assert all(r.answers for r in panel) and run.panel is panel  # drawn once per run
    assert [r.persona_id for r in panel] == [r.persona_id for r in draw_respondents(
        run.eligible, excluded, config.panel.respondents, config.seeds.panel)]
    smaller = {r.persona_id for r in StudyRun(load_run("smoke", "small", {"panel.ablation_respondents": 12})).panel}
    assert len(smaller) == 12 and smaller < {r.persona_id for r in panel}  # an ablation run's is part of the main's
    assert run.anchor_pool is None  # the smoke profile fits no anchors
    anchored = StudyRun(load_config("smoke", overrides={"panel.anchors": True}))
    pool = {r.persona_id for r in anchored.anchor_pool}  # the anchors' pool: everyone eligible outside the panel
    assert len(pool) + len(panel) == len(run.eligible) and not pool & {r.persona_id for r in panel}


@pytest.mark.slow
def test_the_scoring_model_is_the_4bit_base_plus_adapter(tmp_path):
    """The scoring model's weights are exactly the NF4 base's 4-bit values plus the LoRA delta (scale * B A); on a
    real prompt its option distribution agrees with the 4-bit base plus adapter (what generation runs) within the
    4-bit CPU kernel's own rounding (bf16-like, about 0.4 % on a layer's outputs, measured; it varies by processor)."""
    import bitsandbytes as bnb
    import torch
    from peft import LoraConfig, PeftModel, get_peft_model

    from polypersona_utils.llm import models
    from polypersona_utils.llm.models import merged_model
    from polypersona_utils.llm.option_scoring import option_log_probs
    from polypersona_utils.modeling.generation import Variant
    from polypersona_utils.panel.synthetic import softmax

    torch.manual_seed(0)
    base = models.load_causal_lm("smollm2-135m-instruct", None, "nf4", "float32")
    adapter = get_peft_model(base, LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "v_proj"],
                                              init_lora_weights=False, task_type="CAUSAL_LM"))
    adapter.save_pretrained(tmp_path / "adapter")
    lora = adapter.base_model.model.model.layers[0].self_attn.q_proj
    four_bit_weight = bnb.functional.dequantize_4bit(lora.base_layer.weight.data, lora.base_layer.weight.quant_state)
    delta = lora.scaling["default"] * lora.lora_B["default"].weight @ lora.lora_A["default"].weight
    variant = Variant("x-lora", "smollm2-135m-instruct", None, None, str(tmp_path / "adapter"))
    merged, tokenizer = merged_model(variant.model_id, variant.revision, variant.chat_template, variant.adapter_dir,
                                     "nf4", "float32", "float32")
    torch.testing.assert_close(merged.model.layers[0].self_attn.q_proj.weight.data, four_bit_weight + delta,
                               rtol=0, atol=1e-5)
    four_bit = PeftModel.from_pretrained(models.load_causal_lm("smollm2-135m-instruct", None, "nf4", "float32"),
                                         tmp_path / "adapter").eval()
    chat = build_messages(CARD, "healthcare", "Is the nation spending too little, about right or too much on "
                          "improving and protecting the nation's health?", "likert", SPENDING)
    expected = softmax(option_log_probs(four_bit, tokenizer, [chat], [SPENDING])[0])
    got = softmax(option_log_probs(merged, tokenizer, [chat], [SPENDING])[0])
    plain = softmax(option_log_probs(models.load_causal_lm("smollm2-135m-instruct").eval(), tokenizer, [chat],
                                     [SPENDING])[0])
    # The 4-bit CPU kernel's rounding differs between processors: on a 2-core Xeon with AMX (2026-12-02) the two
    # distributions differ by 0.058 at most, where the adapter alone moves them by 0.89; so the bound is a tenth of
    # the adapter's own effect, which a merge that lost or doubled the delta would break.
    adapter_effect = np.abs(expected - plain).max()
    assert adapter_effect > 0.5 and np.abs(got - expected).max() < 0.1 * adapter_effect


def test_check_results_recomputes_the_panel_tables_and_catches_a_changed_one(tmp_roots):
    from polypersona_utils.config import load_config
    from polypersona_utils.panel.report import (DISTRIBUTIONS_FILE, check_panel, compute_panel_tables,
                                                distributions_csv, read_distributions)
    from polypersona_utils.reporting.tables import write_table

    config = load_config("smoke", overrides={"metrics.bootstrap_samples": 100})
    frame = hand_made_frame(lambda party: [0.7, 0.2, 0.1] if party == "Democrat" else [0.2, 0.2, 0.6])
    frame["sampled_option"] = "About right"
    where = config.paths()
    where.results.mkdir(parents=True)
    (where.results / DISTRIBUTIONS_FILE).write_text(distributions_csv(frame, VARIABLES))
    distributions = read_distributions(where.results / DISTRIBUTIONS_FILE)
    for name, table in compute_panel_tables(StudyRun(config), distributions).items():
        write_table(table, where.tables / name)
    assert [check.problems for check in check_panel(config) if check.problems] == []
    stored = where.tables / "panel_individual.csv"
    stored.write_text(stored.read_text().replace("model,", "model-edited,"))
    assert [check.table for check in check_panel(config) if check.problems] == ["panel_individual"]


def test_refresh_panel_recomputes_tables_figures_and_sections_from_the_stored_distributions(tmp_roots):
    import json

    from polypersona_utils.config import load_config
    from polypersona_utils.panel.report import DISTRIBUTIONS_FILE, check_panel, distributions_csv, refresh_panel

    config = load_config("smoke", overrides={"metrics.bootstrap_samples": 100})
    model = hand_made_frame(lambda party: [0.7, 0.2, 0.1] if party == "Democrat" else [0.2, 0.2, 0.6])
    earlier = model.assign(variant="baseline-demographic-cell")  # stored under the method's earlier name
    marginal = hand_made_frame(lambda party: [0.4, 0.2, 0.4]).assign(variant="baseline-population")
    frame = pd.concat([model, earlier, marginal], ignore_index=True).assign(sampled_option="About right")
    where = config.paths()
    (where.results / "provenance").mkdir(parents=True)
    (where.results / DISTRIBUTIONS_FILE).write_text(distributions_csv(frame, VARIABLES))
    (where.results / "provenance" / "06_panel.json").write_text(json.dumps({"training_respondents": 12}))
    where.tables.mkdir(parents=True)
    (where.tables / "panel_order_effect.csv").write_text("variant,mean_total_variation\nmodel,0.1\n")
    tables = refresh_panel(config)
    assert not any(check.problems for check in check_panel(config))  # what it wrote: what the distributions give
    stored = (where.results / DISTRIBUTIONS_FILE).read_text()
    assert "baseline-cell-smoothed" in stored and "baseline-demographic-cell" not in stored
    # every variant the run holds is a predictor (the references too), and the control
    assert set(tables["panel_worth"].predictor) == {"model", "baseline-cell-smoothed", "baseline-population",
                                                    "shuffled-model"}
    assert (where.figures / "panel_verdict.png").exists()
    assert (where.figures / "panel_worth.png").exists() and (where.figures / "panel_by_party.png").exists()
    readme = (where.results / "README.md").read_text()
    assert readme.index("## Verdict") < readme.index("What the panel is worth") < readme.index("synthetic panel against")
    assert "12 training respondents" in readme
    assert json.loads((where.results / "provenance" / "06_panel_refresh.json").read_text())["step"] == "06_panel_refresh"


def spending_answer(body: dict) -> str:
    """A served model's answer, decided by the request's seed: unparseable when the seed is divisible by 7,
    else "Too much" when divisible by 3, else "Too little"."""
    seed = body.get("seed", 1)  # the probe for log-probabilities is greedy and carries none
    return "Maybe." if seed % 7 == 0 else "Too much" if seed % 3 == 0 else "Too little"


def test_a_served_model_panel_samples_k_answers_per_item_and_order(tmp_roots, tmp_path):
    from polypersona_utils.config import load_config
    from polypersona_utils.dataset.questions import load_question_bank
    from polypersona_utils.dataset.respondents import linked_questions
    from polypersona_utils.modeling.generation import variants
    from polypersona_utils.panel.synthetic import score_panel

    from conftest import FakeOpenAI, serve

    url, seen, server = serve(type("SpendingServer", (FakeOpenAI,), {"answer": lambda self, body: spending_answer(body)}))
    config = load_config("smoke", overrides={"panel.http_samples": 6, "models": [
        {"name": "served", "model_id": "big-model", "backend": "http", "http_url": url, "train": False}]})
    [variant] = variants(config)  # served: zero-shot only
    assert variant.name == "served-zeroshot" and variant.http_url == url
    first, second = linked_questions(load_question_bank(config.questions.bank_path))[:2]
    respondent = PanelRespondent("gss2018-0001", CARD, {"race": "white"},
                                 {first.question_id: "Too little", second.question_id: "Too much"})
    try:
        rows = score_panel(StudyRun(config), variant, [respondent], tmp_path / "served.jsonl", progress=False)
        # no tokenizer named: sampled from the start, no request for log-probabilities
        assert not any("logprobs" in b for b in seen) and {r["scored_by"] for r in rows} == {"samples"}
        assert len(seen) == 2 * 2 * 6 and {b["model"] for b in seen} == {"big-model"}
        assert len({b["seed"] for b in seen}) == len(seen)  # one seed per sample
        assert sorted(r["question_id"] for r in rows) == sorted([first.question_id, second.question_id])
        for row in rows:
            question = first if row["question_id"] == first.question_id else second
            for key, order in (("probabilities_given_order", SPENDING), ("probabilities_reversed_order", SPENDING[::-1])):
                asked = split_preamble(question.text)[1]  # a listed preamble is said before the domain
                answers = [spending_answer(b) for b in seen if asked in b["messages"][-1]["content"]
                           and " / ".join(order) in b["messages"][-1]["content"]]
                assert len(answers) == 6
                counts = np.array([answers.count(o) for o in SPENDING], float)
                assert row[key] == pytest.approx((counts + 0.5) / (counts.sum() + 1.5), abs=1e-6)  # Jeffreys
            assert row["unparseable_samples"] == sum(spending_answer(b) == "Maybe." for b in seen
                                                     if asked in b["messages"][-1]["content"])
            assert row["probabilities"] == pytest.approx(
                (np.array(row["probabilities_given_order"]) + row["probabilities_reversed_order"]) / 2, abs=1e-6)
        assert score_panel(StudyRun(config), variant, [respondent], tmp_path / "again.jsonl", progress=False) == rows
        assert len(seen) == 24  # the rerun reads its log: no request again
    finally:
        server.shutdown()


@pytest.mark.parametrize("model, message", [
    ({"name": "s", "model_id": "m", "backend": "http", "train": False}, "http_url: required for the http model 's'"),
    ({"name": "s", "model_id": "m", "backend": "http", "http_url": "http://x/v1"}, "train: the http model 's' is served"),
    ({"name": "s", "model_id": "smollm2-135m-instruct", "http_url": "http://x/v1"},
     "http_url and tokenizer: only for backend: http"),
    ({"name": "s", "model_id": "smollm2-135m-instruct", "tokenizer": "smollm2-135m-instruct"},
     "http_url and tokenizer: only for backend: http"),
])
def test_a_served_model_needs_its_url_and_is_never_trained(model, message):
    from polypersona_utils.config import ConfigError, load_config

    with pytest.raises(ConfigError, match=message):
        load_config("smoke", overrides={"models": [model]})


def test_stacking_credits_a_model_only_with_what_the_card_regression_lacks():
    """200 respondents x 2 items whose answers follow a hidden trait. The card regression knows nothing (the
    marginal); a model that sees the trait gains with an interval above zero; a model that repeats the regression
    gains nothing (its interval holds zero). Cross-fitting: the regression's own log-loss is the uncrossed one."""
    from polypersona_utils.panel.measures import with_answer_columns
    from polypersona_utils.panel.stacking import panel_stacking

    rng = np.random.default_rng(0)
    rows = []
    for i in range(200):
        trait = rng.random()
        for qid in ("q1", "q2"):
            real = SPENDING[int(rng.random() < trait) * 2]  # "Too little" or "Too much"
            knows = [1 - trait, 0.05, trait]
            for variant, p in (("baseline-logistic", [0.45, 0.1, 0.45]), ("knows", knows),
                               ("echo", [0.45, 0.1, 0.45])):
                rows.append({"variant": variant, "persona_id": f"p{i}", "question_id": qid, "options": SPENDING,
                             "probabilities": list(np.array(p) / sum(p)), "real_option": real})
    table = panel_stacking(with_answer_columns(pd.DataFrame(rows)), samples=200, seed=0).set_index("variant")
    assert list(table.card_regression) == ["baseline-logistic"] * 2 and (table.pairs == 400).all()
    knows, echo = table.loc["knows"], table.loc["echo"]
    assert knows.gain_lo > 0.05 and knows.log_loss_with < knows.log_loss_without
    assert echo.gain_lo <= 0 <= echo.gain_hi and abs(echo.gain) < 0.02
    assert knows.log_loss_regression == pytest.approx(-np.log(0.45))


def test_model_families_are_compared_variant_for_variant_on_the_same_draws():
    """Family `a` knows the parties, family `b` is persona-blind; the card regression is blind too. Each of `b`'s
    variants minus `a`'s of the same kind: log-loss and slope by hand, the stacking gain the difference of
    `panel_stacking`'s gains, every interval holding its estimate, and the verdict naming the better family."""
    from polypersona_utils.panel.measures import population_effects
    from polypersona_utils.panel.paired import family_pairs, panel_models
    from polypersona_utils.panel.readme import family_sentences
    from polypersona_utils.panel.stacking import panel_stacking

    def knows(party):
        return [0.8, 0.1, 0.1] if party == "Democrat" else [0.1, 0.1, 0.8]

    def blind(party):
        return [0.45, 0.1, 0.45]
    frames = [hand_made_frame(p).assign(variant=v) for v, p in (
        ("a-zeroshot", blind), ("a-lora", knows), ("b-lora", blind), ("c-lora", blind), ("baseline-logistic", blind))]
    # family a's confidence differs between respondents (0.6 to 0.9 on the real answer), so the draws differ
    confidence = frames[1].persona_id.str[1:].astype(int).map(lambda i: 0.6 + 0.075 * (i % 5))
    frames[1]["probabilities"] = [[c, (1 - c) / 2, (1 - c) / 2] if r == "Too little" else [(1 - c) / 2, (1 - c) / 2, c]
                                  for c, r in zip(confidence, frames[1].real_option)]
    answers = with_answer_columns(pd.concat(frames, ignore_index=True))
    population = with_answer_columns(hand_made_frame(lambda party: [1.0, 0.0, 0.0]))
    assert family_pairs(list(answers.variant.unique()), ["a", "b", "c"]) == [("b-lora", "a-lora"),
                                                                            ("c-lora", "a-lora")]
    table = panel_models(answers, 200, 1, 5, VARIABLES, population_effects(population, VARIABLES), ["a", "b"])
    rows = table.set_index(["variant", "reference", "measure"]).loc[("b-lora", "a-lora")]
    assert list(rows.index) == ["log_loss", "subgroup_effect_slope", "stacking_gain_baseline-logistic"]
    assert rows.loc["log_loss", "difference"] == pytest.approx(np.mean(-math.log(0.45) + np.log(confidence)))
    gains = panel_stacking(answers, 200, 1).set_index("variant").gain
    assert rows.loc["stacking_gain_baseline-logistic", "difference"] == pytest.approx(gains["b-lora"] - gains["a-lora"])
    assert (rows.difference_lo <= rows.difference).all() and (rows.difference <= rows.difference_hi).all()
    # b is clearly worse on every measure: higher log-loss, lower slope and stacking gain
    assert rows.loc["log_loss", "difference_lo"] > 0 and (rows.iloc[1:].difference_hi < 0).all()
    said = family_sentences(table, {"a": {"train_s_per_record": 0.5, "score_s_per_pair": 0.1}})
    assert said.count("(`a-lora` better)") == 3 and "`a` 0.50 s per training record and 0.100 s per panel pair" in said
    single = panel_models(answers, 200, 1, 5, VARIABLES, population_effects(population, VARIABLES), ["a"])
    assert single.empty


def test_the_stackers_are_solved_to_their_optimum():
    """A relative perturbation of 1e-12 in every probability (what another processor's arithmetic does) moves the
    cross-fitted stackers' mean log-losses by far less than the last written digit (1e-4): the fits stop at the
    optimum, not where a loose tolerance happens to stop them. On the committed ess9gb panel's first item (eleven
    options, a zero-shot model's sharp log-probabilities), lbfgs at scikit-learn's default tolerance moved them by
    1.4e-3 (2026-12-07, AMD EPYC)."""
    from polypersona_utils.panel.report import read_distributions
    from polypersona_utils.panel.stacking import model_variants, stacking_losses

    frame = read_distributions(paths.results_dir("ess9gb") / "panel_distributions.csv")
    answers = with_answer_columns(frame[frame.question_id == sorted(frame.question_id.unique())[0]])
    model = model_variants(answers.variant.unique())[0]
    rng = np.random.default_rng(1)
    perturbed = answers.copy()
    perturbed["probabilities"] = [p * (1 + 1e-12 * rng.standard_normal(len(p))) for p in answers.probabilities]
    _, before = stacking_losses(answers, model, "baseline-logistic", 0)
    _, after = stacking_losses(perturbed, model, "baseline-logistic", 0)
    for kind in ("without", "with"):
        assert abs(before[kind].mean() - after[kind].mean()) < 1e-9
