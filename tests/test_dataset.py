import json
from collections import Counter

import pytest

from polypersona_utils import paths
from polypersona_utils.config import load_config
from polypersona_utils.dataset.build import build_dataset
from polypersona_utils.dataset.personas import survey_panel
from polypersona_utils.dataset.questions import load_question_bank
from polypersona_utils.dataset.record_import import RecordImportError, import_records
from polypersona_utils.dataset.records import assign_questions
from polypersona_utils.dataset.splits import LeakageError, check_leakage, split_records
from polypersona_utils.dataset.surveys import load_survey
from polypersona_utils.provenance import read_jsonl, write_jsonl

from conftest import FIXTURES


def record(persona, question, rid=None):
    return {"id": rid or f"{persona}--{question}", "persona_id": persona, "question": question}


def test_split_is_persona_disjoint_and_seeded():
    records = [record(f"p{p}", f"q{q}") for p in range(50) for q in range(4)]
    splits = split_records(records, (0.8, 0.1, 0.1), seed=5)
    check_leakage(splits)
    assert {k: len({r["persona_id"] for r in v}) for k, v in splits.items()} == {"train": 40, "val": 5, "test": 5}
    assert splits == split_records(list(reversed(records)), (0.8, 0.1, 0.1), seed=5)  # input order is irrelevant
    assert splits != split_records(records, (0.8, 0.1, 0.1), seed=6)


def test_record_level_split_when_not_persona_disjoint():
    records = [record(f"p{p}", f"q{q}") for p in range(10) for q in range(10)]
    splits = split_records(records, (0.8, 0.1, 0.1), seed=5, persona_disjoint=False)
    assert [len(v) for v in splits.values()] == [80, 10, 10]
    check_leakage(splits, persona_disjoint=False)
    with pytest.raises(LeakageError, match="is in splits"):
        check_leakage(splits, persona_disjoint=True)


def test_leakage_check_fails_on_shared_persona_and_repeated_pair():
    with pytest.raises(LeakageError, match="persona p1 is in splits \\['test', 'train'\\]"):
        check_leakage({"train": [record("p1", "a")], "val": [], "test": [record("p1", "b")]})
    with pytest.raises(LeakageError, match="pair occurs 2 times"):
        check_leakage({"train": [record("p1", "a", "x"), record("p1", "a", "y")], "val": [], "test": []})


def test_assignment_draws_distinct_eligible_questions():
    bank = load_question_bank(paths.QUESTION_BANK)
    panel = survey_panel(load_survey("gss2018"), 60, seed=2)
    pairs = assign_questions(panel, bank, [8] * 60, seed=3, linked_per_persona=2)
    assert len(pairs) == 480
    assert len({(p["persona_id"], q.question_id) for p, q in pairs}) == 480
    for persona, question in pairs:
        if question.is_closed and question.survey_item:  # real answer exists: never invented
            assert question.survey_item in panel.answers[persona["persona_id"]]
    linked = Counter(p["persona_id"] for p, q in pairs if q.is_closed and q.survey_item)
    assert min(linked[c.persona_id] for c in panel.cards) >= 2


def test_assignment_follows_the_papers_domain_quotas():
    bank = load_question_bank(paths.QUESTION_BANK)
    panel = survey_panel(load_survey("gss2018"), 200, seed=2)
    domains = Counter(q.domain for _, q in assign_questions(panel, bank, [8] * 200, seed=3))
    shares = {d: domains[d] / 1600 for d in bank.domains}
    for domain, quota in bank.domain_quotas.items():  # paper share +- 3 points (sampling noise at n=1,600)
        assert abs(shares[domain] - quota / 3568) < 0.03, domain


def test_build_writes_contract_records_and_is_byte_deterministic(tmp_roots, hash_teacher):
    config = load_config("smoke")
    first = build_dataset(config, progress=False, teacher=hash_teacher)
    first_bytes = {n: p.read_bytes() for n, p in first.files.items()}
    second = build_dataset(config, progress=False, teacher=hash_teacher)
    assert {n: p.read_bytes() for n, p in second.files.items()} == first_bytes
    rows = {n: read_jsonl(p) for n, p in first.files.items()}
    check_leakage(rows)
    sources = Counter(r["reference_source"] for v in rows.values() for r in v)
    assert sources["real_respondent"] >= 12 and sources["teacher"] > 0  # linked_per_persona: 1 in smoke
    for r in (r for v in rows.values() for r in v):
        assert r["messages"][-1]["content"] == r["reference"]
        if r["options"]:
            assert r["reference"] in r["options"]
    data_dir = paths.data_dir("smoke")
    assert (data_dir / "hf_dataset" / "dataset_dict.json").exists()
    provenance = json.loads((paths.results_dir("smoke") / "provenance" / "01_build_dataset.json").read_text())
    assert provenance["seeds"]["split"] == config.seeds.split and provenance["git_commit"]
    assert provenance["package_versions"]["torch"].startswith("2.13.0")
    card = (paths.results_dir("smoke") / "dataset_card.md").read_text()
    assert "NOT the paper's numbers" in card
    assert (paths.figures_dir("smoke") / "dataset_overview.png").stat().st_size > 10_000


def test_split_seed_changes_the_split_not_the_records(tmp_roots, hash_teacher):
    base = build_dataset(load_config("smoke"), progress=False, teacher=hash_teacher)
    ids = lambda result: {n: [r["id"] for r in v] for n, v in result.splits.items()}  # noqa: E731
    before = ids(base)
    other = build_dataset(load_config("smoke", overrides={"seeds.split": 1}), progress=False, teacher=hash_teacher)
    after = ids(other)
    assert before != after and sorted(sum(before.values(), [])) == sorted(sum(after.values(), []))


def test_user_panel_build(tmp_roots, hash_teacher):
    config = load_config("smoke", overrides={"personas.source": "file", "personas.n_personas": 3,
                                             "personas.path": str(FIXTURES / "panel.csv"),
                                             "real_answers.training_respondents": 0, "learning_curve": []})
    result = build_dataset(config, progress=False, teacher=hash_teacher)
    records = [r for v in result.splits.values() for r in v]
    assert {r["persona_id"] for r in records} == {"nurse-01", "farmer-02", "student-03"}
    assert {r["reference_source"] for r in records} == {"teacher"}  # no real answers for a user panel


def test_malformed_panel_writes_nothing(tmp_roots, hash_teacher, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text((FIXTURES / "panel.csv").read_text().replace("nurse-01,34", "nurse-01,"))
    config = load_config("smoke", overrides={"personas.source": "file", "personas.path": str(bad)})
    with pytest.raises(ValueError, match="line 2: field 'age'"):
        build_dataset(config, progress=False, teacher=hash_teacher)
    assert not paths.artifacts_dir("smoke").exists() and not paths.results_dir("smoke").exists()


def test_import_of_polypersona_format(tmp_roots, tmp_path, hash_teacher):
    built = build_dataset(load_config("smoke"), progress=False, teacher=hash_teacher)
    exported = tmp_path / "export.jsonl"
    write_jsonl(exported, [{k: r[k] for k in ("id", "domain", "persona", "question", "question_type",
                                              "reference", "messages", "options")}
                           for v in built.splits.values() for r in v])
    config = load_config("smoke", overrides={"references.mode": "import", "references.import_path": str(exported),
                                             "real_answers.training_respondents": 0, "learning_curve": []})
    imported = build_dataset(config, progress=False)
    rows = [r for v in imported.splits.values() for r in v]
    assert len(rows) == sum(len(v) for v in built.splits.values())
    assert {r["reference_source"] for r in rows} == {"imported"}


def test_import_rejects_a_record_without_reference(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"id": "1", "domain": "finance", "persona": {}, "question": "Q?",
                                "question_type": "open", "messages": [{"role": "user", "content": "Q?"}]}) + "\n")
    with pytest.raises(RecordImportError, match=r"bad.jsonl: line 1 \(record 1\): field 'persona' is missing"):
        import_records(path, load_question_bank(load_config("smoke").questions.bank_path))


def test_ablation_runs_see_a_fixed_persona_subset_and_the_main_run_everything():
    from polypersona_utils.dataset.splits import run_view

    records = [dict(record(f"p{p:02d}", f"q{q}"), domain="healthcare" if q == 0 else "finance")
               for p in range(20) for q in range(4)]
    main = load_config("default")
    assert run_view(records, "train", main) == records  # the main run: whole splits
    run = load_config("default", overrides={"run": "rank8", "lora.r": 8})
    other = load_config("default", overrides={"run": "no-persona", "ablation.include_persona": False})
    subset = run_view(records, "train", run)
    assert len({r["persona_id"] for r in subset}) == run.ablation_runs.train_personas == 8
    assert all(len([r for r in subset if r["persona_id"] == p]) == 4 for p in {r["persona_id"] for r in subset})
    assert subset == run_view(records, "train", other)  # every run: the same subset
    assert {r["persona_id"] for r in run_view(records, "test", run)} != {r["persona_id"] for r in subset}
    reseeded = load_config("default", overrides={"run": "rank8", "seeds.split": 1})
    assert run_view(records, "train", reseeded) != subset
    heldout = load_config("default", overrides={"run": "h", "ablation.heldout_domain": "healthcare"})
    test = run_view(records, "test", heldout)
    assert {r["domain"] for r in test} == {"healthcare"}
    assert len({r["persona_id"] for r in test}) == heldout.ablation_runs.test_personas
    assert {r["domain"] for r in run_view(records, "train", heldout)} == {"finance"}
    full = load_config("default", overrides={"run": "full", "ablation_runs.train_personas": None})
    assert run_view(records, "train", full) == records
    respondents = {f"p{p:02d}" for p in range(12, 20)}  # training respondents: all in the main run
    assert run_view(records, "train", main, respondents) == records
    assert not respondents & {r["persona_id"] for r in run_view(records, "train", full, respondents)}
    seen = lambda k: {r["persona_id"] for r in run_view(  # noqa: E731
        records, "train", load_config("default", overrides={"run": f"n{k}", "ablation.training_respondents": k}),
        respondents)} & respondents
    assert [len(seen(k)) for k in (0, 2, 5, 8)] == [0, 2, 5, 8] and seen(2) < seen(5) < seen(8)  # nested sizes
    with pytest.raises(ValueError, match="training_respondents: 9 asked, the dataset has 8"):
        seen(9)


def test_training_respondents_join_train_with_every_linked_answer(tmp_roots, hash_teacher):
    from polypersona_utils.dataset.respondents import survey_respondents
    from polypersona_utils.dataset.splits import TRAINING_RESPONDENTS_FILE

    config = load_config("smoke", overrides={"real_answers.training_respondents": 6})
    result = build_dataset(config, progress=False, teacher=hash_teacher)
    ids = set(json.loads((result.data_dir / TRAINING_RESPONDENTS_FILE).read_text()))
    panel_ids = {r["persona_id"] for v in result.splits.values() for r in v if r["persona_id"] not in ids}
    assert len(ids) == 6 and not ids & panel_ids and len(panel_ids) == config.personas.n_personas
    real = {r.persona_id: r for r in survey_respondents(load_survey("gss2018"), config.bank)}
    rows = [r for r in result.splits["train"] if r["persona_id"] in ids]
    assert not ids & {r["persona_id"] for s in ("val", "test") for r in result.splits[s]}
    bank = {q.question_id: q for q in load_question_bank(config.questions.bank_path).questions}
    reversed_order = 0
    for pid in ids:  # every linked item the respondent answered, with the real answer, nothing else
        own = {r["question_id"]: r for r in rows if r["persona_id"] == pid}
        assert {q: r["reference"] for q, r in own.items()} == real[pid].answers
        for qid, r in own.items():
            assert r["reference_source"] == "real_respondent" and r["persona"] == real[pid].card
            assert r["options"] in (list(bank[qid].options), list(bank[qid].options[::-1]))
            assert " / ".join(r["options"]) in r["messages"][1]["content"]  # the prompt shows that order
            reversed_order += r["options"] != list(bank[qid].options)
    assert 0.25 < reversed_order / len(rows) < 0.75  # mixed: about half reversed
    assert result.counts["training_respondent_records"] == len(rows)
    given = build_dataset(load_config("smoke", overrides={"real_answers.training_respondents": 6,
                                                          "real_answers.option_order": "given"}),
                          progress=False, teacher=hash_teacher)
    assert all(r["options"] == list(bank[r["question_id"]].options) for r in given.splits["train"]
               if r["persona_id"] in ids)
    too_many = load_config("smoke", overrides={"real_answers.training_respondents": 10_000})
    with pytest.raises(ValueError, match="training_respondents: 10000 asked"):
        build_dataset(too_many, progress=False, teacher=hash_teacher)
