"""The teacher: a real interrupted run resumes without duplicates or gaps; the HTTP backend over real HTTP."""
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from polypersona_utils.dataset.prompts import build_messages
from polypersona_utils.dataset.teacher import HttpTeacher, TeacherRequest, run_teacher, trim_to_sentence
from polypersona_utils.provenance import read_jsonl

PERSONA = {"age": 50, "gender": "man", "occupation": "retired", "education": "graduate degree",
           "region": "lives in a city", "income_bracket": "not reported", "political_identity": "independent",
           "values": ["a", "b"], "traits": ["c", "d"], "interests": ["e", "f"]}

# Shared by the test and the subprocess it kills: 8 open questions and a closed one, batches of 2, the embedded SmolLM2.
SCRIPT = textwrap.dedent("""
    import sys
    from polypersona_utils.dataset.prompts import build_messages
    from polypersona_utils.dataset.teacher import LocalTeacher, TeacherRequest, run_teacher
    PERSONA = {persona!r}
    requests = [TeacherRequest.make(build_messages(PERSONA, "lifestyle", f"What do you do on day {{i}} of a holiday?",
                                                   "open")) for i in range(8)]
    requests.append(TeacherRequest.make(build_messages(PERSONA, "finance", "Do you save?", "yesno", ("Yes", "No")),
                                        ("Yes", "No")))
    teacher = LocalTeacher("smollm2-135m-instruct", None, max_new_tokens=12, temperature=0.7, top_p=0.9, seed=1)
    answers = run_teacher(requests, teacher, __import__("pathlib").Path(sys.argv[1]), batch_size=2, progress=False)
    print(len(answers))
""").format(persona=PERSONA)


def cache_lines(path):
    return path.read_text().count("\n") if path.exists() else 0


@pytest.mark.slow
def test_killed_teacher_run_resumes_with_no_duplicate_and_no_gap(tmp_path):
    script = tmp_path / "teacher_run.py"
    script.write_text(SCRIPT)
    interrupted, clean = tmp_path / "interrupted.jsonl", tmp_path / "clean.jsonl"
    process = subprocess.Popen([sys.executable, str(script), str(interrupted)])
    deadline = time.time() + 240
    while cache_lines(interrupted) < 2 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    done_before_kill = len(read_jsonl(interrupted))
    assert 0 < done_before_kill < 9, "the kill must land mid-run for this test to mean anything"
    # A kill can also land mid-write: simulate the torn last line it would leave.
    with open(interrupted, "a") as handle:
        handle.write('{"key": "torn')
    subprocess.run([sys.executable, str(script), str(interrupted)], check=True)
    subprocess.run([sys.executable, str(script), str(clean)], check=True)
    resumed_rows, clean_rows = read_jsonl(interrupted), read_jsonl(clean)
    assert len(resumed_rows) == 9 and len({r["key"] for r in resumed_rows}) == 9  # no gap, no duplicate
    # Sampled (temperature 0.7) and still identical: seeds are per batch and batches are fixed slices.
    assert {r["key"]: r["answer"] for r in resumed_rows} == {r["key"]: r["answer"] for r in clean_rows}
    assert {r["answer"] for r in resumed_rows if r["answer"] in ("Yes", "No")}  # the closed one picked an option
    before = clean.read_bytes()
    subprocess.run([sys.executable, str(script), str(clean)], check=True)  # all cached: nothing appended
    assert clean.read_bytes() == before


def test_trim_to_sentence():
    assert trim_to_sentence("I like tea. I also like cof") == "I like tea."
    assert trim_to_sentence("Mostly yes!  Then") == "Mostly yes!"
    assert trim_to_sentence("no sentence end") == "no sentence end"
    assert trim_to_sentence("  ") == ""


def test_http_teacher_over_real_http(tmp_path, openai_server):
    url, seen = openai_server
    teacher = HttpTeacher(url, "served-model", 32, 0.0, 1.0, seed=4)
    open_q = TeacherRequest.make(build_messages(PERSONA, "lifestyle", "How do you relax?", "open"))
    closed_q = TeacherRequest.make(build_messages(PERSONA, "finance", "Do you save?", "yesno", ("Yes", "No")),
                                   ("Yes", "No"))
    answers = run_teacher([open_q, closed_q, open_q], teacher, tmp_path / "cache.jsonl", 2, progress=False)
    assert answers == {open_q: "I walk a lot.", closed_q: "Yes"}
    assert len(seen) == 2  # the repeated request was asked once
    assert seen[0]["model"] == "served-model" and seen[0]["max_tokens"] == 32
    run_teacher([open_q, closed_q], teacher, tmp_path / "cache.jsonl", 2, progress=False)
    assert len(seen) == 2  # cached: no new request


def test_http_teacher_unreachable_endpoint_is_a_clear_error(tmp_path):
    teacher = HttpTeacher("http://127.0.0.1:9/v1", "m", 8, 0.0, 1.0, seed=0, timeout_s=5)
    request = TeacherRequest.make(build_messages(PERSONA, "lifestyle", "Q?", "open"))
    with pytest.raises(RuntimeError, match="endpoint http://127.0.0.1:9/v1/chat/completions did not answer"):
        run_teacher([request], teacher, tmp_path / "cache.jsonl", 1, progress=False)
    assert (tmp_path / "cache.jsonl").read_text() == ""  # nothing half-written


def test_option_scores_of_a_batch_equal_one_full_forward_per_option():
    import torch

    from polypersona_utils.dataset.teacher import LocalTeacher

    teacher = LocalTeacher("smollm2-135m-instruct", None, max_new_tokens=8, temperature=0.0, top_p=1.0, seed=1)
    other = dict(PERSONA, age=71, gender="man", political_identity="strong Republican, conservative")
    likert = ("Very dissatisfied", "Dissatisfied", "Neutral", "Satisfied", "Very satisfied")
    # One batch as run_teacher gives it: two personas, two option counts (scored in separate calls).
    requests = [TeacherRequest.make(build_messages(persona, "finance", question, kind, options), options)
                for persona, question, kind, options in [
                    (PERSONA, "Do you save?", "yesno", ("Yes", "No")),
                    (PERSONA, "How satisfied are you with your bank?", "likert", likert),
                    (other, "Do you save?", "yesno", ("Yes", "No")),
                    (other, "How satisfied are you with your bank?", "likert", likert)]]
    expected = []
    with torch.inference_mode():
        for request in requests:  # the plain way: the whole conversation through the model, once per option
            prompt = teacher.tokenizer.apply_chat_template(request.chat(), tokenize=False, add_generation_prompt=True)
            start = len(teacher.tokenizer(prompt, add_special_tokens=False)["input_ids"]) - 1
            row = []
            for option in request.options:
                text = teacher.tokenizer.apply_chat_template(
                    request.chat() + [{"role": "assistant", "content": option}], tokenize=False)
                ids = torch.tensor([teacher.tokenizer(text, add_special_tokens=False)["input_ids"]])
                logprobs = torch.log_softmax(teacher.model(ids).logits[0, :-1].float(), dim=-1)
                row.append(logprobs[start:].gather(1, ids[0, 1:][start:, None]).mean().item())
            expected.append(row)
    scores = teacher.option_scores(requests)
    assert len(scores) == len(expected) == len(requests) and [len(s) for s in scores] == [len(w) for w in expected]
    for got, want in zip(scores, expected):
        assert got == pytest.approx(want, abs=1e-4)
    assert scores[0] != pytest.approx(scores[2], abs=1e-3)  # the card matters: rows were not mixed up
    assert teacher.answer(requests, 0) == [r.options[max(range(len(w)), key=w.__getitem__)]
                                           for r, w in zip(requests, expected)]
