"""Polypersona-format data as the replication released it: `.json` files holding JSONL, ids in `meta`, persona
cards without politics, closed questions without options, repeated pairs, and given train/val/test files that share
personas and pairs (kept where the release put them, counted, and every released test prediction scored)."""
import json
from pathlib import Path

import pytest

from polypersona_utils import paths
from polypersona_utils.config import load_config
from polypersona_utils.dataset.build import build_dataset
from polypersona_utils.dataset.questions import load_question_bank
from polypersona_utils.dataset.record_import import RecordImportError
from polypersona_utils.user_files import UserFileError

BANK = load_question_bank(load_config("smoke").questions.bank_path).by_id()


def released(rid: str, persona: str, question: str, answer: str, question_type: str = "open",
             domain: str = "demographics") -> dict:
    """One record shaped like the released files: messages, persona and the rest in `meta`, no `options`."""
    card = {"age": 41, "gender": "woman", "occupation": "nurse", "education": "bachelor's degree",
            "region": "Ohio", "income_bracket": "$50,000-$74,999", "values": ["family"], "traits": ["calm"],
            "interests": ["gardening"], "name": "Ann"}  # no persona_id, no political_identity; `name` is extra
    return {"id": rid, "messages": [{"role": "system", "content": "You are ..."},
                                    {"role": "user", "content": question},
                                    {"role": "assistant", "content": answer}],
            "meta": {"persona_id": persona, "question_id": f"orig-{rid}", "question_type": question_type,
                     "domain": domain, "question": question, "persona": card}}


def write(path, rows) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))  # JSONL, though the name says .json
    return str(path)


@pytest.fixture
def released_files(tmp_path):
    home = BANK["dem_12"]  # a yes/no question the bank holds: its options come from the bank
    train = [released("t1", "p1", "Describe your street.", "Quiet and green."),
             released("t2", "p1", home.text, "Yes", "yesno"),
             released("t3", "p2", "Would you move abroad?", "Agree", "likert"),  # not in the bank: standard scale
             released("t4", "p2", "Would you move abroad?", "Disagree", "likert")]  # a repeated pair
    val = [released("v1", "p3", "Describe your street.", "Busy.")]
    test = [released("s1", "p1", "What do you cook?", "Soup.")]  # p1 is also in train: released splits overlap
    return {name: write(tmp_path / f"{name}.json", rows) for name, rows in (("train", train), ("val", val),
                                                                             ("test", test))}


def test_released_files_import_with_their_splits_ids_and_options(tmp_roots, released_files):
    config = load_config("smoke", overrides={"references.mode": "import", "references.import_path": released_files,
                                             "real_answers.training_respondents": 0,
                                             "learning_curve": []})
    result = build_dataset(config, progress=False)
    assert {n: [r["id"] for r in rows] for n, rows in result.splits.items()} == {
        "train": ["t1", "t2", "t3", "t4"], "val": ["v1"], "test": ["s1"]}  # given splits kept, the repeat t4 too
    records = {r["id"]: r for rows in result.splits.values() for r in rows}
    assert records["t2"]["options"] == list(BANK["dem_12"].options) and records["t2"]["question_id"] == "orig-t2"
    assert records["t3"]["options"] == list(load_question_bank(config.questions.bank_path).standard_scale("likert"))
    assert records["t1"]["persona_id"] == "p1" and records["t1"]["persona"]["political_identity"] == "not reported"
    prompt = records["t3"]["messages"][1]["content"]
    assert "Politics: not reported" in prompt and "Answer with exactly one of these options: Strongly disagree" in prompt
    assert records["t3"]["messages"][-1]["content"] == records["t3"]["reference"] == "Agree"
    counts = result.counts
    assert "dropped_duplicate_pairs" not in counts and counts["personas_in_several_given_splits"] == 1
    assert counts["train: repeated (persona, question) record kept"] == 1
    assert counts["options from the question bank"] == 1 and counts["options from the standard scale"] == 2
    assert counts["persona field not used: name"] == 6
    card = (paths.results_dir("smoke") / "dataset_card.md").read_text()
    assert "persona source: imported from" in card and "test.json` (test)" in card and "source: `gss2018`" not in card


def test_a_repeated_pair_in_one_file_names_both_places_unless_duplicates_are_dropped(tmp_roots, released_files):
    one_file = {"references.mode": "import", "references.import_path": released_files["train"],
                "real_answers.training_respondents": 0, "learning_curve": []}
    with pytest.raises(RecordImportError, match=r"train.json: line 4 \(record t4\): field 'question': persona p2 is "
                                                r"asked question orig-t4 again \(first at train.json: line 3 \(record "
                                                r"t3\)\); set references.drop_duplicates: true"):
        build_dataset(load_config("smoke", overrides=one_file), progress=False)
    assert not paths.artifacts_dir("smoke").exists() and not paths.results_dir("smoke").exists()
    result = build_dataset(load_config("smoke", overrides={**one_file, "references.drop_duplicates": True}),
                           progress=False)
    assert sorted(r["id"] for rows in result.splits.values() for r in rows) == ["t1", "t2", "t3"]
    assert result.counts["dropped_duplicate_pairs"] == 1
    assert not any("given_split" in r for rows in result.splits.values() for r in rows)


def test_given_splits_refuse_to_drop_duplicates_and_repeated_ids_with_what_to_do(tmp_roots, released_files, tmp_path):
    overrides = {"references.mode": "import", "references.import_path": released_files,
                 "real_answers.training_respondents": 0, "learning_curve": []}
    with pytest.raises(RecordImportError, match=r"references.drop_duplicates: true, but .*train.json is given as the "
                                                r"train split .*remove references.drop_duplicates, or give one file"):
        build_dataset(load_config("smoke", overrides={**overrides, "references.drop_duplicates": True}),
                      progress=False)
    twice = write(tmp_path / "test_twice.json", [released("v1", "p9", "What do you read?", "Novels.")])
    with pytest.raises(RecordImportError, match=r"test_twice.json: line 1 \(record v1\): field 'id': 'v1' is already "
                                                r"the id of the record at val.json: line 1; ids must be unique across "
                                                r"the imported files .*give one of them another id"):
        build_dataset(load_config("smoke", overrides={**overrides, "references.import_path": {
            "val": released_files["val"], "test": twice}}), progress=False)
    assert not paths.artifacts_dir("smoke").exists() and not paths.results_dir("smoke").exists()


@pytest.mark.parametrize("change, message", [
    (lambda r: r["meta"].pop("question"), r"line 1 \(record t1\): field 'question' is missing or empty"),
    (lambda r: r["meta"].update(question_type="scale"), r"line 1 \(record t1\): field 'question_type' must be one"),
    (lambda r: r["meta"].update(persona_id=None), r"line 1 \(record t1\): persona: field 'persona_id' missing"),
    (lambda r: r.pop("id"), r"line 1: field 'id' is missing or empty \(also looked in 'meta'\)"),
])
def test_a_malformed_record_names_file_line_record_and_field(tmp_path, change, message):
    from polypersona_utils.dataset.record_import import import_records

    row = released("t1", "p1", "Describe your street.", "Quiet.")
    change(row)
    path = write(tmp_path / "one.json", [row])
    with pytest.raises(RecordImportError, match="one.json: " + message):
        import_records(path, load_question_bank(load_config("smoke").questions.bank_path))


def test_make_tracks_the_imported_files(released_files):
    from polypersona_utils.make_plan import sources_makefile

    config = load_config("smoke", overrides={"references.mode": "import", "references.import_path": released_files})
    line = next(l for l in sources_makefile(config).splitlines() if l.startswith("DATA_INPUTS := "))
    assert all(path in line for path in released_files.values())


def test_free_text_closed_answers_as_released_keep_their_text_and_the_option_parsed_from_it(tmp_path):
    from polypersona_utils.dataset.prompts import closed_answer
    from polypersona_utils.dataset.record_import import import_records
    from polypersona_utils.dataset.records import check_record

    likert = ('On a scale of 1 to 5, with 1 being "Strongly Disagree" and 5 being "Strongly Agree," I\'d rate myself '
              'a 3. While I understand the appeal, I have my doubts.')
    rows = [released("c1", "p1", "Would you move abroad?", "Agree", "likert"),
            released("c2", "p2", "Would you move abroad?", "I agree. I have always wanted to.", "likert"),
            released("c3", "p3", "Would you move abroad?", likert, "likert"),
            released("c4", "p1", "Describe your street.", "Quiet.")]
    stats = __import__("collections").Counter()
    records = {r["id"]: r for r in import_records(write(tmp_path / "train.json", rows),
                                                  load_question_bank(load_config("smoke").questions.bank_path),
                                                  stats=stats, split="train")}
    assert records["c1"]["reference_option"] == "Agree" and records["c1"]["reference_kind"] == "option"
    assert records["c2"]["reference"] == "I agree. I have always wanted to."  # the text, for the text metrics
    assert records["c2"]["reference_option"] == "Agree" and records["c2"]["reference_kind"] == "free text, option parsed"
    assert records["c3"]["reference"] == likert and records["c3"]["reference_option"] is None  # names no option
    assert records["c3"]["messages"][-1]["content"] == likert  # trained on what the file says
    assert "reference_option" not in records["c4"]
    assert [closed_answer(records[i]) for i in ("c1", "c2", "c3", "c4")] == ["Agree", "Agree", None, None]
    assert stats["train: closed reference: option"] == 1 and stats["train: closed reference: free text, no option"] == 1
    assert stats["train: closed reference: free text, option parsed"] == 1
    for record in records.values():
        check_record(record)
    with pytest.raises(ValueError, match="reference is not one of its options"):
        check_record({**records["c3"], "reference_option": "Maybe"})


RELEASED = Path(__file__).parent / "fixtures" / "released"


def test_the_released_val_and_test_round_trip_and_every_released_prediction_is_scored(tmp_roots, monkeypatch):
    """The replication's val/test files (a miniature: tests/fixtures/released) imported with their own splits:
    personas and (persona, question) pairs they share, across the splits and within one, are kept where the release
    put them and counted in the dataset card; notebook 01's leakage check passes on the splits as written; and
    `make score` of the released test predictions scores every one, against the references they were scored with."""
    import pandas as pd

    from polypersona_utils.dataset.splits import check_leakage, given_split_overlaps, load_split
    from polypersona_utils.evaluation import external_scores, metrics
    from polypersona_utils.provenance import read_jsonl

    files = {"val": str(RELEASED / "val.json"), "test": str(RELEASED / "test.json")}
    released_ids = {name: [json.loads(line)["id"] for line in Path(path).read_text().splitlines()]
                    for name, path in files.items()}
    config = load_config("smoke", overrides={"references.mode": "import", "references.import_path": files,
                                             "real_answers.training_respondents": 0,
                                             "learning_curve": []})
    result = build_dataset(config, progress=False)
    assert {n: sorted(r["id"] for r in rows) for n, rows in result.splits.items()} == {
        "train": [], "val": sorted(released_ids["val"]), "test": sorted(released_ids["test"])}
    written = {name: read_jsonl(result.data_dir / f"{name}.jsonl") for name in ("train", "val", "test")}
    check_leakage(written, config.splits.persona_disjoint)  # as notebook 01 re-checks them: no LeakageError
    assert all(r["given_split"] == name for name, rows in written.items() for r in rows)
    assert given_split_overlaps(written) == [
        {"where": "val & test", "personas": 2, "pairs": 1, "records": 2},
        {"where": "within val", "personas": 1, "pairs": 1, "records": 2},
        {"where": "within test", "personas": 1, "pairs": 1, "records": 2}]
    assert result.counts["personas_in_several_given_splits"] == 2
    assert result.counts["val: repeated (persona, question) record kept"] == 1
    assert result.counts["test: repeated (persona, question) record kept"] == 1
    assert result.counts["test: repeated (persona, question) record kept, first in val"] == 1
    card = (paths.results_dir("smoke") / "dataset_card.md").read_text()
    assert "kept as given with the overlaps they were released with: val & test share 2 personas and 1 (persona, " \
           "question) pair; 1 pair asked more than once within val; 1 pair asked more than once within test" in card
    assert "## Overlaps kept as given" in card and "| val & test  |          2 |       1 |         2 |" in card
    assert "test: closed reference: free text, option parsed: 1" in card  # the free-text agreement answer

    # make score, up to the scores: every released test prediction is a test record of the profile, with its reference
    predictions = RELEASED / "test_predictions.jsonl"
    released = [json.loads(line) for line in predictions.read_text().splitlines()]
    test = {r["id"]: r for r in load_split(config, "test")}
    rows = external_scores.read_predictions(predictions, set(test), {i: r["reference"] for i, r in test.items()})
    assert sorted(r["id"] for r in rows) == sorted(released_ids["test"]) == sorted(test)

    # and scored: BERTScore stood in (no model here); every other score is the study's own
    monkeypatch.setattr(metrics, "bertscore_f1", lambda predictions, references, *args: [0.0] * len(predictions))
    external_scores.score_predictions(config, predictions, "released")
    out = paths.results_dir("smoke") / "scored" / "released"
    assert json.loads((out / "manifest.json").read_text())["missing"] == []
    assert f"{len(released)} of {len(released)} test records scored" in (out / "README.md").read_text()
    scores = pd.read_csv(out / "per_example_scores.csv")
    mine = scores[scores.variant == "released"].set_index("id")
    assert sorted(mine.index) == sorted(released_ids["test"])
    for row in released:  # the study's ROUGE on the release's own references agrees with the released ROUGE
        for name in ("rouge1", "rouge2", "rougeL"):
            assert abs(mine.loc[row["id"], name] - row[name]) <= 1e-6, (row["id"], name)


def test_released_predictions_made_against_other_references_are_refused_with_what_to_do(tmp_path):
    from polypersona_utils.evaluation.external_scores import read_predictions

    test = {json.loads(line)["id"]: json.loads(line) for line in (RELEASED / "test.json").read_text().splitlines()}
    references = {rid: r["reference"] for rid, r in test.items()}
    rows = [json.loads(line) for line in (RELEASED / "test_predictions.jsonl").read_text().splitlines()]
    rows[1]["reference"] = "Another teacher's answer."
    rows[2]["reference"] = "  " + rows[2]["reference"].replace(" ", "\n")  # whitespace aside, the same reference
    path = write(tmp_path / "other.jsonl", rows)
    with pytest.raises(UserFileError, match=r"other.jsonl: field 'reference': 1 of 5 row\(s\) carry a reference that "
                                            r"is not the test split's: environment-076-pp0a1b2c-dup2001 \(line 2\)\. "
                                            r".*references.import_path.test\), or remove the rows' 'reference' field"):
        read_predictions(Path(path), set(test), references)
    for row in rows:
        row.pop("reference")
    assert len(read_predictions(Path(write(tmp_path / "plain.jsonl", rows)), set(test), references)) == 5
    with pytest.raises(UserFileError, match=r"1 id\(s\) not in the profile's test split: .*build a profile from the "
                                            r"test file these answers were made for"):
        read_predictions(Path(path), set(test) - {rows[0]["id"]}, references)
