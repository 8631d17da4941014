"""`make score`: answers produced elsewhere, scored against the test split with the study's metrics."""
import json

import pandas as pd
import pytest

from polypersona_utils import paths
from polypersona_utils.config import load_config
from polypersona_utils.dataset.build import build_dataset
from polypersona_utils.evaluation.external_scores import score_predictions
from polypersona_utils.provenance import write_jsonl
from polypersona_utils.user_files import UserFileError


@pytest.fixture
def smoke_test_split(tmp_roots, hash_teacher):
    config = load_config("smoke", overrides={"splits.train": 0.5, "splits.val": 0.1, "splits.test": 0.4})
    return config, build_dataset(config, progress=False, teacher=hash_teacher).splits["test"]


def test_scores_a_predictions_file_and_lists_the_records_without_an_answer(smoke_test_split, tmp_path):
    config, test = smoke_test_split
    answered, missing = test[:-2], test[-2:]
    predictions = tmp_path / "elsewhere.json"  # a .json file holding JSONL, as the released files do
    write_jsonl(predictions, [{"id": r["id"], "prediction": r["reference"]} for r in answered])
    score_predictions(config, predictions, "my-model")
    out = paths.results_dir("smoke") / "scored" / "my-model"
    scores = pd.read_csv(out / "per_example_scores.csv")
    mine = scores[scores.variant == "my-model"]
    assert sorted(mine.id) == sorted(r["id"] for r in answered)
    assert {"id", "reference", "prediction", "rouge1", "bleu_nltk", "bertscore_f1"} <= set(scores.columns)
    assert (mine.rouge1 == 1.0).all() and (mine.prediction == mine.reference).all()  # identical texts
    closed = mine[mine.question_type != "open"]
    assert len(closed) and (closed.parsed_option == closed.reference).all()
    table = pd.read_csv(out / "tables" / "model_comparison.csv").set_index("variant")
    assert set(table.index) == {"my-model", "baseline-train-retrieval"} and table.loc["my-model", "rouge1"] == 1.0
    readme = (out / "README.md").read_text()
    assert "produced outside this study" in readme and all(r["id"] in readme for r in missing)
    assert json.loads((out / "manifest.json").read_text())["missing"] == sorted(r["id"] for r in missing)


@pytest.mark.parametrize("rows, message", [
    ([{"id": "nobody--q1", "prediction": "x"}], r"bad.jsonl: 1 id\(s\) not in the profile's test split: nobody--q1 \(line 1\)"),
    ([{"id": "ID", "prediction": "a"}, {"id": "ID", "prediction": "b"}], "line 2: record ID: field 'id' repeats line 1"),
    ([{"id": "ID"}], "line 1: field 'prediction' is missing"),
])
def test_bad_predictions_name_file_line_and_record_and_write_nothing(smoke_test_split, tmp_path, rows, message):
    config, test = smoke_test_split
    rows = [dict(r, id=test[0]["id"]) if r["id"] == "ID" else r for r in rows]
    path = tmp_path / "bad.jsonl"
    write_jsonl(path, rows)
    with pytest.raises(UserFileError, match=message.replace("ID", test[0]["id"])):
        score_predictions(config, path, "my-model")
    assert not (paths.results_dir("smoke") / "scored").exists()


def test_the_studys_own_variant_names_are_refused(smoke_test_split, tmp_path):
    config, test = smoke_test_split
    path = tmp_path / "p.jsonl"
    write_jsonl(path, [{"id": test[0]["id"], "prediction": "x"}])
    with pytest.raises(ValueError, match="NAME='smollm2-135m-lora'"):
        score_predictions(config, path, "smollm2-135m-lora")
