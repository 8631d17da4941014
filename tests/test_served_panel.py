"""A served model in the panel: option distributions from token log-probabilities, requests in flight, retries."""
import json
import math

import numpy as np
import pytest

from polypersona_utils.dataset.respondents import PanelRespondent
from polypersona_utils.study import StudyRun

from conftest import FakeOpenAI, serve

SPENDING = ["Too little", "About right", "Too much"]
CARD = {"persona_id": "gss2018-0001", "age": 50, "gender": "man", "occupation": "retired",
        "education": "graduate degree", "region": "lives in a city", "income_bracket": "not reported",
        "political_identity": "independent, moderate", "values": ["a"], "traits": ["b"], "interests": ["c"],
        "description": ""}


# A served model by hand: after the assistant's turn starts "Too" .6 / "About" .3; then " little" .7 / " much" .2
# after "Too", " right" .9 after "About"; the end of the turn (a special token, listed as "") .8 after an option;
# the line break .99 after it. Exact: Too little .6 x .7 x .8 x .99, About right .3 x .9 x .8 x .99, Too much
# .6 x .2 x .8 x .99, normalised.
ANSWERS = {"": {"Too": 0.6, "About": 0.3, "We": 0.05}, "Too": {" little": 0.7, " much": 0.2},
           "About": {" right": 0.9, " it": 0.05}, "Too little": {"": 0.8, ".": 0.1}, "Too much": {"": 0.8, ".": 0.1},
           "About right": {"": 0.8, ".": 0.1}}
EXACT = np.array([0.42, 0.27, 0.12]) / 0.81


class CompletionServer(FakeOpenAI):
    """A completions endpoint answering one next token with its alternatives (`answers`, by the answer so far), as
    llama.cpp's server lists them; a token biased up (+100) is the greedy one, its unbiased log-probability from
    `hidden` (what the model gives tokens it does not list)."""

    answers = ANSWERS
    hidden: dict = {}

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.seen.append(body)
        answer = body["prompt"].split("<|im_start|>assistant\n")[-1]
        listed = {"\n": 0.99} if answer.endswith("<|im_end|>") else self.answers[answer]
        top = {token: math.log(p) for token, p in listed.items()}
        greedy = max((t for t in top if t), key=top.get)  # the biased special tokens are never the greedy one
        value = top[greedy]
        forced = [int(i) for i, bias in (body.get("logit_bias") or {}).items() if bias > 0]
        if forced:
            from polypersona_utils.llm import models

            greedy = models.load_tokenizer("smollm2-135m-instruct").decode(forced)
            value = math.log(self.hidden[answer, greedy])
            top = {greedy: value}  # one alternative asked for
        payload = json.dumps({"id": "c", "object": "text_completion", "created": 0, "model": body["model"],
                              "choices": [{"index": 0, "text": greedy, "finish_reason": "length",
                                           "logprobs": {"tokens": [greedy], "token_logprobs": [value],
                                                        "top_logprobs": [top], "text_offset": [0]}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


def served_config(url, **overrides):
    from polypersona_utils.config import load_config
    from polypersona_utils.modeling.generation import variants

    config = load_config("smoke", overrides={"panel.http_samples": 6, "models": [
        {"name": "served", "model_id": "big-model", "backend": "http", "http_url": url, "train": False,
         "tokenizer": "smollm2-135m-instruct"}], **overrides})
    [variant] = variants(config)
    return config, variant


def score_served(handler, respondent_answers: int = 2, **overrides):
    """(rows, request bodies, printed announcement) of one respondent's first linked items scored through
    `handler`."""
    from polypersona_utils.dataset.respondents import linked_questions
    from polypersona_utils.panel.synthetic import score_panel

    url, seen, server = serve(handler)
    config, variant = served_config(url, **overrides)
    items = linked_questions(config.bank)[:respondent_answers]
    respondent = PanelRespondent("gss2018-0001", CARD, {"race": "white"},
                                 {q.question_id: q.options[0] for q in items})
    try:
        rows = score_panel(StudyRun(config), variant, [respondent], config.paths().artifacts / "served.jsonl",
                           progress=False)
    finally:
        server.shutdown()
    return rows, seen


def test_exact_option_probabilities_by_hand(tmp_roots, capsys):
    from polypersona_utils.panel.report import order_effect_table

    rows, seen = score_served(CompletionServer)
    # per order: the turn start, "Too", "About", each option, each option's end of turn: 9 prefixes
    assert len(seen) == 2 * 2 * 9 and all(b["logprobs"] == 20 and b["max_tokens"] == 1 for b in seen)
    assert all(b["logit_bias"] == {"0": -100, "1": -100, "2": -100} for b in seen)  # SmolLM2's special tokens
    assert "2 respondent-item pairs, 36 requests if the endpoint gives log-probabilities (9 answer prefixes" \
        in capsys.readouterr().out
    for row in rows:  # in the bank's order, whatever order the prompt showed
        assert row["scored_by"] == "tokens" and row["bounded_options"] == 0 and row["unparseable_samples"] == 0
        np.testing.assert_allclose(row["probabilities_given_order"], EXACT, atol=1e-6)
        np.testing.assert_allclose(row["probabilities_reversed_order"], EXACT, atol=1e-6)
    table = order_effect_table({"served-zeroshot": rows}, http_samples=6).set_index("variant")
    assert table.loc["served-zeroshot", "served_by"] == "tokens"
    assert table.loc["served-zeroshot", "bounded_option_share"] == 0
    assert math.isnan(table.loc["served-zeroshot", "unparseable_sample_share"])  # nothing was sampled


class UnlistedTokens(CompletionServer):
    """" right" is not among the alternatives after "About" (the model gives it .3: read exactly by biasing it up);
    the end of the turn is not among them after "About right" (the least listed is .1: bounded by that)."""

    answers = {**ANSWERS, "About": {" left": 0.5, " it": 0.05}, "About right": {".": 0.5, "!": 0.1}}
    hidden = {("About", " right"): 0.3}


def test_an_unlisted_token_is_read_by_biasing_it_up_and_an_unlisted_end_of_turn_is_bounded(tmp_roots):
    rows, seen = score_served(UnlistedTokens, respondent_answers=1)
    [row] = rows
    expected = np.array([0.6 * 0.7 * 0.8, 0.3 * 0.3 * 0.1, 0.6 * 0.2 * 0.8])  # About right: .3 x .3 x (at most) .1
    np.testing.assert_allclose(row["probabilities_given_order"], expected / expected.sum(), atol=1e-6)
    assert row["bounded_options"] == 2  # About right, in each order
    assert len(seen) == 2 * (9 + 1)  # one more request an order: " right" biased up
    assert sum(1 for b in seen if max(b["logit_bias"].values()) > 0) == 2


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
    """Rejects a request for log-probabilities as malformed (400), answers the others with `text`."""

    text = "Too much"

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
        payload = json.dumps({"choices": [{"message": {"role": "assistant", "content": self.text}}]}).encode()
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


def test_sampled_answers_that_name_no_option_are_counted(tmp_roots, tmp_path, monkeypatch):
    from polypersona_utils.panel.report import order_effect_table

    monkeypatch.setattr(RefusesLogprobs, "text", "It depends, I would say.")
    rows, seen = score_served(RefusesLogprobs, respondent_answers=1, **{"panel.http_samples": 3})
    [row] = rows
    assert row["scored_by"] == "samples" and row["unparseable_samples"] == 2 * 3 and len(seen) == 2 * 3
    assert row["probabilities_given_order"] == pytest.approx([1 / 3] * 3, abs=1e-6)  # Jeffreys on no answer
    table = order_effect_table({"served-zeroshot": rows}, http_samples=3).set_index("variant")
    assert table.loc["served-zeroshot", "unparseable_sample_share"] == 1.0
