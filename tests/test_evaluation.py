"""The evaluation on hand-made predictions: perfect answers score 1, empty ones 0, baselines and intervals are
there, and check_results catches a table that no longer follows from the stored answers."""
import numpy as np
import pandas as pd
import pytest

from polypersona_utils import paths
from polypersona_utils.config import load_config
from polypersona_utils.evaluation.baselines import (BASELINE, CELL_BASELINE, demographic_cell_baseline,
                                                    retrieval_baseline)
from polypersona_utils.evaluation.scoring import check_results, evaluate
from polypersona_utils.provenance import write_jsonl


def write_predictions(records, variant, answer_of):
    rows = []
    for r in records:
        answer = answer_of(r)
        parsed = answer if r["options"] and answer in r["options"] else None
        rows.append({"id": r["id"], "prediction": answer, "parsed_option": parsed,
                     "unparseable": bool(r["options"]) and parsed is None, "variant": variant, "split": "test"})
    write_jsonl(paths.RunPaths("smoke").predictions / f"{variant}.jsonl", rows)


@pytest.fixture(scope="module")
def evaluated_workspace(tmp_path_factory, smoke_build):
    """The smoke dataset, two variants' hand-made predictions and their evaluation, made once for this module in a
    workspace of its own (the evaluation takes seconds); each test gets a copy."""
    from conftest import copy_workspace, use_workspace

    built_in, built = smoke_build
    with pytest.MonkeyPatch.context() as patch:
        workspace = use_workspace(patch, tmp_path_factory.mktemp("evaluated"))
        copy_workspace(built_in, workspace)
        config = load_config("smoke", overrides={"metrics.bootstrap_samples": 200})
        test = built.splits["test"]
        write_predictions(test, "smollm2-135m-lora", lambda r: r["reference"])  # perfect
        write_predictions(test, "smollm2-135m-zeroshot", lambda r: "")  # says nothing
        return workspace, config, evaluate(config)


@pytest.fixture
def evaluated(evaluated_workspace, tmp_roots):
    """The module's evaluation, its files copied into this test's workspace."""
    from conftest import copy_workspace

    workspace, config, tables = evaluated_workspace
    copy_workspace(workspace, tmp_roots)
    return config, {name: table.copy() for name, table in tables.items()}


def test_perfect_and_empty_answers(evaluated):
    _, tables = evaluated
    text = tables["model_comparison"].set_index("variant")
    assert text.loc["smollm2-135m-lora", "rouge1"] == pytest.approx(1.0)
    assert text.loc["smollm2-135m-lora", "bertscore_f1"] == pytest.approx(1.0, abs=1e-3)
    assert text.loc["smollm2-135m-zeroshot", ["bleu_nltk", "rouge1", "bertscore_f1"]].tolist() == [0, 0, 0]
    assert BASELINE in text.index
    closed = tables["closed_alignment"].set_index("variant")
    assert closed.loc["smollm2-135m-lora", "agreement_with_respondent"] == 1.0
    assert closed.loc["smollm2-135m-zeroshot", "unparseable_share"] == 1.0
    assert 0.9 < closed.loc["human split-half ceiling", "distribution_alignment"] <= 1.0
    paired = tables["paired_differences"]
    row = paired[(paired.comparison == "smollm2-135m-lora - smollm2-135m-zeroshot") & (paired.metric == "rouge1")]
    assert row.difference.item() == pytest.approx(1.0) and row.low.item() == pytest.approx(1.0)


def test_metric_figures_show_the_tables_as_written(evaluated, tmp_path):
    """Drawn again from the CSVs, the figures have the same bytes: they follow the tables, not float noise below
    the tables' last digit (which made a PDF differ between two runs of the same params)."""
    from polypersona_utils.evaluation.figures import metric_figures
    from polypersona_utils.reporting.tables import written_tables

    config, tables = evaluated
    where = config.paths()
    assert (tables["model_comparison"].bleu_nltk.round(4) != tables["model_comparison"].bleu_nltk).any()  # digits lost
    metric_figures(written_tables(where.tables, ("model_comparison", "domain_metrics")), tmp_path, where.name)
    for name in ("metric_bars.pdf", "metric_bars.png", "domain_heatmap.pdf"):
        assert (tmp_path / name).read_bytes() == (where.figures / name).read_bytes(), name


def test_intervals_bracket_the_mean(evaluated):
    _, tables = evaluated
    assert len(tables["model_comparison"]) >= 2  # both variants, or the loop proves nothing
    for _, row in tables["model_comparison"].iterrows():
        for metric in ("bleu_nltk", "rouge1", "bertscore_f1"):
            assert row[f"{metric}_low"] - 1e-12 <= row[metric] <= row[f"{metric}_high"] + 1e-12


def test_check_results_reproduces_and_catches_a_changed_table(evaluated):
    config, _ = evaluated
    assert [check.problems for check in check_results(config) if check.problems] == []
    table = paths.tables_dir("smoke") / "model_comparison.csv"
    frame = pd.read_csv(table)
    frame.loc[0, "rouge1"] += 0.01
    frame.to_csv(table, index=False, float_format="%.4f")
    failed = [check for check in check_results(config) if check.problems]
    assert [check.table for check in failed] == ["model_comparison"]
    assert "column rouge1" in failed[0].problems[0] and "row 1 (variant=" in failed[0].problems[0]


def test_retrieval_baseline_uses_only_training_answers():
    persona = {"gender": "man", "occupation": "x", "education": "y", "region": "z", "income_bracket": "i",
               "political_identity": "p"}
    train = [
        {"id": "a", "question_id": "q1", "options": ["Yes", "No"], "reference": "No", "persona": persona},
        {"id": "b", "question_id": "q1", "options": ["Yes", "No"], "reference": "No", "persona": persona},
        {"id": "c", "question_id": "q1", "options": ["Yes", "No"], "reference": "Yes", "persona": persona},
        {"id": "d", "question_id": "q2", "options": [], "reference": "far", "persona": dict(persona, gender="woman")},
        {"id": "e", "question_id": "q2", "options": [], "reference": "near", "persona": persona},
    ]
    test = [{"id": "t1", "question_id": "q1", "options": ["Yes", "No"], "persona": persona},
            {"id": "t2", "question_id": "q2", "options": [], "persona": persona},
            {"id": "t3", "question_id": "q3", "options": ["Yes", "No"], "persona": persona}]
    rows = {r["id"]: r for r in retrieval_baseline(train, test)}
    assert rows["t1"]["prediction"] == "No"  # the training respondents' majority
    assert rows["t2"]["prediction"] == "near"  # the most similar training persona
    assert rows["t3"]["unparseable"] and rows["t3"]["prediction"] == ""  # nobody in training was asked


def test_demographic_cell_baseline_answers_the_cells_majority_then_everyone_s():
    young = {"age": 25, "gender": "woman", "education": "college", "political_identity": "Democrat, liberal",
             "occupation": "x"}
    old = dict(young, age=70, political_identity="Republican, conservative")
    independent = dict(young, age=50, political_identity="Independent")
    closed = {"question_id": "q1", "options": ["Yes", "No", "Maybe"]}
    train = [dict(closed, id="a", reference="Yes", persona=young),
             dict(closed, id="b", reference="Yes", persona=young),
             dict(closed, id="c", reference="No", persona=old),
             dict(closed, id="d", reference="No", persona=dict(old, political_identity="Republican, moderate")),
             *(dict(closed, id=f"i{k}", reference="Maybe", persona=independent) for k in range(3)),
             {"id": "f", "question_id": "q9", "options": [], "reference": "words", "persona": young}]
    test = [dict(closed, id="t1", persona=young),
            dict(closed, id="t2", persona=dict(old, political_identity="Republican, strong")),
            dict(closed, id="t3", persona=dict(young, gender="man")),  # a cell nobody in training is in
            {"id": "t4", "question_id": "q9", "options": [], "persona": old},
            dict(closed, id="t5", question_id="q2", persona=young)]
    rows = {r["id"]: r for r in demographic_cell_baseline(train, test)}
    assert set(rows) == {"t1", "t2", "t3", "t5"}  # closed questions only
    assert rows["t1"]["prediction"] == "Yes"  # its cell's majority, against everyone's "Maybe" (3 of 7)
    assert rows["t2"]["prediction"] == "No"  # party is what comes before the comma: the Republicans' cell
    assert rows["t3"]["prediction"] == "Maybe"  # an empty cell: every training respondent asked
    assert rows["t5"]["unparseable"] and rows["t5"]["prediction"] == ""  # nobody in training was asked
    assert {r["variant"] for r in rows.values()} == {CELL_BASELINE}
    tie = demographic_cell_baseline(train[:1] + train[2:3], [dict(closed, id="t", persona=independent)])
    assert tie[0]["prediction"] == "Yes"  # a tie goes to the option listed first


def test_calibration_bins_pool_every_option_of_every_pair():
    from polypersona_utils.panel.measures import calibration

    frame = pd.DataFrame({"variant": ["m", "m", "n"],
                          "probabilities": [np.array([0.05, 0.95]), np.array([0.15, 0.85]), np.array([1.0, 0.0])],
                          "real_onehot": [np.array([0.0, 1.0]), np.array([1.0, 0.0]), np.array([1.0, 0.0])]})
    table = calibration(frame, bins=10).set_index(["variant", "bin"])
    assert list(table.index) == [("m", 0), ("m", 1), ("m", 8), ("m", 9), ("n", 0), ("n", 9)]  # empty bins left out
    assert table.loc[("m", 9)].tolist() == pytest.approx([0.95, 1.0, 1])
    assert table.loc[("m", 8)].tolist() == pytest.approx([0.85, 0.0, 1])
    assert table.loc[("m", 1)].tolist() == pytest.approx([0.15, 1.0, 1])
    assert table.loc[("n", 9)].tolist() == pytest.approx([1.0, 1.0, 1])  # probability 1 falls in the last bin
    assert table.loc[("n", 0)].tolist() == pytest.approx([0.0, 0.0, 1])
    pooled = calibration(frame, bins=2).set_index(["variant", "bin"])
    assert pooled.loc[("m", 0)].tolist() == pytest.approx([0.10, 0.5, 2])


def test_persona_fidelity_prefers_the_own_card():
    from polypersona_utils.evaluation.fidelity import fidelity_scores, mismatched

    base = {"age": 40, "gender": "woman", "education": "college", "region": "a city", "income_bracket": "middle",
            "political_identity": "independent", "values": ["a", "b"], "traits": ["c", "d"]}
    nurse = dict(base, occupation="works as a nurse in a hospital", interests=["hiking", "gardening"])
    farmer = dict(base, occupation="runs a cattle farm", interests=["fishing", "tractors"])
    scores = fidelity_scores(["Working hospital shifts as a nurse, I unwind by hiking and gardening.",
                              "Farm work with the cattle comes first; on Sundays I go fishing."],
                             [nurse, farmer], [farmer, nurse])
    assert (scores.fidelity_gap > 0).all()
    assert mismatched(["b", "a", "c", "a"]) == {"a": "b", "b": "c", "c": "a"}  # nobody keeps their own card


def test_evaluation_writes_fidelity_and_diversity(evaluated):
    _, tables = evaluated
    diversity = tables["diversity"].set_index("variant")
    assert "smollm2-135m-lora" in diversity.index and 0 < diversity.loc["smollm2-135m-lora", "distinct_1"] <= 1
    assert "smollm2-135m-zeroshot" not in diversity.index  # empty answers are not open answers to compare
    assert (paths.tables_dir("smoke") / "persona_fidelity.csv").exists()


def test_subgroup_alignment_table(evaluated):
    _, tables = evaluated
    table = tables["subgroup_alignment"]
    assert set(table.variable) <= {"age_band", "gender", "education", "party"}
    perfect = table[(table.variant == "smollm2-135m-lora") & (table.questions > 0)]
    assert len(perfect) and perfect.distribution_alignment.between(0, 1).all()
    for name in ("answer_distributions", "answer_distributions_by_subgroup"):
        assert (paths.figures_dir("smoke") / f"{name}.png").stat().st_size > 10_000


def test_evaluating_another_split_never_overwrites_the_test_outputs(evaluated, smoke_data):
    config, _ = evaluated
    test_readme = config.paths().results / "README.md"
    before = test_readme.read_bytes()
    val = config.paths("val")
    assert val.results == config.paths().results / "splits" / "val" and val.predictions != config.paths().predictions
    for variant, answer_of in (("smollm2-135m-lora", lambda r: r["reference"]), ("smollm2-135m-zeroshot", lambda r: "")):
        rows = [{"id": r["id"], "prediction": answer_of(r), "parsed_option": None, "unparseable": bool(r["options"]),
                 "variant": variant, "split": "val"} for r in smoke_data.splits["val"]]
        write_jsonl(val.predictions / f"{variant}.jsonl", rows)
    evaluate(config, split="val")
    assert (val.tables / "model_comparison.csv").exists() and "(val)" in (val.results / "README.md").read_text()
    assert test_readme.read_bytes() == before
