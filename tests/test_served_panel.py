"""A served model in the panel: option distributions from token log-probabilities, requests in flight, retries."""
import json
import math

import numpy as np
import pytest

from polypersona_utils.dataset.respondents import PanelRespondent
from polypersona_utils.panel.served import option_probabilities
from polypersona_utils.study import StudyRun

from conftest import FakeOpenAI, serve

SPENDING = ["Too little", "About right", "Too much"]
CARD = {"persona_id": "gss2018-0001", "age": 50, "gender": "man", "occupation": "retired",
        "education": "graduate degree", "region": "lives in a city", "income_bracket": "not reported",
        "political_identity": "independent, moderate", "values": ["a"], "traits": ["b"], "interests": ["c"],
        "description": ""}


def test_option_probabilities_by_hand():
    # greedy answer "Too little": P(Too) .6 then P( little | Too) .7, P( much | Too) .2; "About" .3 at the start,
    # its later tokens not observed (taken as certain)
    steps = [("Too", math.log(0.6), {"Too": math.log(0.6), "About": math.log(0.3)}),
             (" little", math.log(0.7), {" little": math.log(0.7), " much": math.log(0.2)})]
    p = option_probabilities(steps, SPENDING)
    np.testing.assert_allclose(p, np.array([0.42, 0.3, 0.12]) / 0.84)
    assert option_probabilities(steps, ["Yes", "No"]) is None  # names no option, none listed
    lower = [("too", math.log(0.9), {"too": math.log(0.9)}), (" much", math.log(0.8), {" much": math.log(0.8)})]
    assert option_probabilities(lower, SPENDING)[2] == pytest.approx(1.0)  # case does not matter
    spaced = [("\n", math.log(0.99), {"\n": math.log(0.99)})] + steps  # a line break before the answer
    np.testing.assert_allclose(option_probabilities(spaced, SPENDING), np.array([0.42, 0.3, 0.12]) / 0.84)


class LogprobServer(FakeOpenAI):
    """Answers greedily "Too little" with log-probabilities, whatever the order of the options."""

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append(body)
        content = [{"token": "Too", "logprob": math.log(0.6), "bytes": None,
                    "top_logprobs": [{"token": "Too", "logprob": math.log(0.6), "bytes": None},
                                     {"token": "About", "logprob": math.log(0.3), "bytes": None}]},
                   {"token": " little", "logprob": math.log(0.7), "bytes": None,
                    "top_logprobs": [{"token": " little", "logprob": math.log(0.7), "bytes": None},
                                     {"token": " much", "logprob": math.log(0.2), "bytes": None}]}]
        payload = json.dumps({"choices": [{"index": 0, "finish_reason": "stop",
                                           "message": {"role": "assistant", "content": "Too little"},
                                           "logprobs": {"content": content}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def served_config(url, **overrides):
    from polypersona_utils.config import load_config
    from polypersona_utils.modeling.generation import variants

    config = load_config("smoke", overrides={"panel.http_samples": 6, "models": [
        {"name": "served", "model_id": "big-model", "backend": "http", "http_url": url, "train": False}], **overrides})
    [variant] = variants(config)
    return config, variant


def test_an_endpoint_with_log_probabilities_costs_two_requests_a_pair(tmp_roots, tmp_path, capsys):
    from polypersona_utils.dataset.questions import load_question_bank
    from polypersona_utils.dataset.respondents import linked_questions
    from polypersona_utils.panel.report import order_effect_table
    from polypersona_utils.panel.synthetic import score_panel

    url, seen, server = serve(LogprobServer)
    config, variant = served_config(url)
    first, second = linked_questions(load_question_bank(config.questions.bank_path))[:2]
    respondent = PanelRespondent("gss2018-0001", CARD, {"race": "white"},
                                 {first.question_id: "Too little", second.question_id: "Too much"})
    try:
        rows = score_panel(StudyRun(config), variant, [respondent], tmp_path / "served.jsonl", progress=False)
    finally:
        server.shutdown()
    assert len(seen) == 2 * 2 and all(b["logprobs"] is True and b["top_logprobs"] == 20 for b in seen)
    assert "2 respondent-item pairs, 4 requests if the endpoint gives log-probabilities, else 24" in capsys.readouterr().out
    expected = np.array([0.42, 0.3, 0.12]) / 0.84  # the bank's order; reversed prompts give the same by option
    for row in rows:
        assert row["scored_by"] == "logprobs" and row["unparseable_samples"] == 0
        np.testing.assert_allclose(row["probabilities_given_order"], expected, atol=1e-6)
        np.testing.assert_allclose(row["probabilities_reversed_order"], expected, atol=1e-6)
    table = order_effect_table({"served-zeroshot": rows}, http_samples=6).set_index("variant")
    assert table.loc["served-zeroshot", "served_by"] == "logprobs"


class FlakyServer(FakeOpenAI):
    """Fails twice with 503, then answers (counts every attempt)."""

    def do_POST(self):  # noqa: N802
        self.server.attempts = getattr(self.server, "attempts", 0) + 1
        if self.server.attempts <= 2:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        super().do_POST()


def test_a_server_that_fails_twice_is_retried_with_backoff():
    from polypersona_utils.llm.backends import openai_chat

    url, seen, server = serve(FlakyServer)
    try:
        text = openai_chat(url, "m", [{"role": "user", "content": "Pick one of the options."}], 8, 0.0, 1.0, seed=1,
                           retries=3)
    finally:
        server.shutdown()
    assert text == "Yes, I do. Every month." and server.attempts == 3 and len(seen) == 1


class RefusesLogprobs(FakeOpenAI):
    """Rejects a request for log-probabilities as malformed (400), answers the others."""

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if body.get("logprobs"):
            payload = b'{"error": {"message": "logprobs not supported"}}'
            self.send_response(400)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        self.server.seen.append(body)
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": "Too much"}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def test_an_endpoint_that_refuses_log_probabilities_is_sampled(tmp_roots, tmp_path):
    from polypersona_utils.dataset.questions import load_question_bank
    from polypersona_utils.dataset.respondents import linked_questions
    from polypersona_utils.panel.synthetic import score_panel

    url, seen, server = serve(RefusesLogprobs)
    config, variant = served_config(url, **{"panel.http_samples": 3})
    first = linked_questions(load_question_bank(config.questions.bank_path))[0]
    respondent = PanelRespondent("gss2018-0001", CARD, {"race": "white"}, {first.question_id: "Too much"})
    try:
        [row] = score_panel(StudyRun(config), variant, [respondent], tmp_path / "served.jsonl", progress=False)
    finally:
        server.shutdown()
    assert row["scored_by"] == "samples" and len(seen) == 2 * 3
    assert row["probabilities_given_order"] == pytest.approx([0.5 / 4.5, 0.5 / 4.5, 3.5 / 4.5], abs=1e-6)
