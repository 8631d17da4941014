"""Polypersona-format data as the replication released it: `.json` files holding JSONL, ids in `meta`, persona
cards without politics, closed questions without options, repeated pairs, and given train/val/test files."""
import json

import pytest

from polypersona_utils import paths
from polypersona_utils.config import load_config
from polypersona_utils.dataset.build import build_dataset
from polypersona_utils.dataset.questions import load_question_bank
from polypersona_utils.dataset.record_import import RecordImportError

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
                                             "references.drop_duplicates": True,
                                             "real_answers.training_respondents": 0,
                                             "real_answers.learning_curve": []})
    result = build_dataset(config, progress=False)
    assert {n: [r["id"] for r in rows] for n, rows in result.splits.items()} == {
        "train": ["t1", "t2", "t3"], "val": ["v1"], "test": ["s1"]}  # given splits kept, t4 dropped
    records = {r["id"]: r for rows in result.splits.values() for r in rows}
    assert records["t2"]["options"] == list(BANK["dem_12"].options) and records["t2"]["question_id"] == "orig-t2"
    assert records["t3"]["options"] == list(load_question_bank(config.questions.bank_path).standard_scale("likert"))
    assert records["t1"]["persona_id"] == "p1" and records["t1"]["persona"]["political_identity"] == "not reported"
    prompt = records["t3"]["messages"][1]["content"]
    assert "Politics: not reported" in prompt and "Answer with exactly one of these options: Strongly disagree" in prompt
    assert records["t3"]["messages"][-1]["content"] == records["t3"]["reference"] == "Agree"
    counts = result.counts
    assert counts["dropped_duplicate_pairs"] == 1 and counts["personas_in_several_given_splits"] == 1
    assert counts["options from the question bank"] == 1 and counts["options from the standard scale"] == 1
    assert counts["persona field not used: name"] == 5
    card = (paths.results_dir("smoke") / "dataset_card.md").read_text()
    assert "persona source: imported from" in card and "test.json` (test)" in card and "source: `gss2018`" not in card


def test_a_repeated_pair_names_both_places_unless_duplicates_are_dropped(tmp_roots, released_files):
    config = load_config("smoke", overrides={"references.mode": "import", "references.import_path": released_files,
                                             "real_answers.training_respondents": 0,
                                             "real_answers.learning_curve": []})
    with pytest.raises(RecordImportError, match=r"train.json: line 4 \(record t4\): persona p2 is asked question "
                                                r"orig-t4 again \(first at train.json: line 3 \(record t3\)\); "
                                                r"set references.drop_duplicates: true"):
        build_dataset(config, progress=False)
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
