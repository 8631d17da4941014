"""A served model in the panel (a variant with `http_url`: vLLM, a llama.cpp server, any OpenAI-compatible
endpoint), asked through the `openai` client with `panel.http_concurrency` requests in flight and
`panel.http_retries` retries with backoff.

Exact (`scored_by: tokens`) where the variant names the tokenizer and chat template the server uses
(`models[].tokenizer`) and the endpoint's completions give log-probabilities (`panel.http_method: auto`): an option's
probability is the product of its own tokens' probabilities through the end of the assistant turn (the turn the
in-process scoring reads, `option_scoring.continuation_ids`), each read from one completion request whose prompt is
the chat text up to that token (the option's earlier tokens as the answer's prefix; a prefix the options share is
asked once), at the token's text among the `panel.http_top_logprobs` listed alternatives; the options' masses are
then normalised. Every request biases the tokenizer's special tokens down (`logit_bias`) so that the server lists
the next token's alternatives instead of ending the turn: what it reports is the unbiased log-probabilities (llama.cpp's
server, checked in tests/test_served_server.py, and vLLM's default), and a special token is looked up under its text
or under "" (llama.cpp lists special tokens with empty text). A token not among the listed alternatives is bounded
by the least listed one, never 0, and the row counts the options so bounded (`bounded_options`). Two orders a pair.

Otherwise (no tokenizer, an endpoint without log-probabilities, or `http_method: sampling`) `panel.http_samples`
answers are sampled per order and parsed by the study's parser, Jeffreys-smoothed ((count + 1/2) / (parsed + n/2))
so no option has zero mass; a sample that names no option counts as unparseable. Each row says which method scored
it (`scored_by`)."""
from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..dataset.parsing import parse_option
from ..llm.backends import EndpointError, openai_chat, openai_next_token
from ..llm.option_scoring import continuation_ids

log = logging.getLogger(__name__)
METHODS = ("tokens", "samples")


def option_steps(tokenizer, chat: list[dict], options: list[str]) -> list[list[tuple[str, str, int, bool]]]:
    """Per option, each token of the assistant turn answering with it as (the prompt text up to that token, the
    token's text, its id, whether it is a special token)."""
    prompt = tokenizer.apply_chat_template(chat, tokenize=False, add_generation_prompt=True)
    _, turns = continuation_ids(tokenizer, chat, options)
    special = set(tokenizer.all_special_ids)

    def text(ids):
        return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    return [[(prompt + text(turn[:i]), text(turn[:i + 1])[len(text(turn[:i])):], token, token in special)
             for i, token in enumerate(turn)] for turn in turns]


def listed_log_prob(listed: tuple[str, float, dict[str, float]], piece: str, special: bool) -> float | None:
    """The log-probability of the token `piece` after a prefix, from the endpoint's answer for that prefix (its
    greedy token, that token's log-probability, {listed alternative: log-probability}); None when not listed."""
    token, logprob, alternatives = listed
    for key in (piece, "") if special else (piece,):
        if key in alternatives:
            return alternatives[key]
    return logprob if token == piece else None


def exact_distribution(steps: list[list[tuple]], values: dict[tuple[str, int], tuple[float, bool]]
                       ) -> tuple[np.ndarray, int]:
    """(the options' distribution, options bounded) from `option_steps` and each (prefix, token id)'s
    (log-probability, bounded?)."""
    scores, bounded = [], 0
    for option in steps:
        read = [values[prefix, token] for prefix, _, token, _ in option]
        scores.append(sum(value for value, _ in read))
        bounded += any(was for _, was in read)
    scores = np.array(scores)
    mass = np.exp(scores - scores.max())
    return mass / mass.sum(), bounded


def requests_per_pair(config, method: str, prefixes: int | None = None) -> int:
    """Requests for one respondent-item pair (both orders): the distinct answer prefixes of the options' turns
    (`prefixes`, per order) when exact, else the samples."""
    return 2 * (prefixes or 0) if method == "tokens" else 2 * config.panel.http_samples


class ServedPanel:
    """One served variant's scoring session: the method, decided once (the endpoint probed on the first prompt when
    `auto` and the variant names its tokenizer), and the thread pool its requests share."""

    def __init__(self, config, variant, tokenizer=None):
        self.config, self.variant, self.tokenizer = config, variant, tokenizer
        exact = config.panel.http_method == "auto" and tokenizer is not None
        self.method = None if exact else "samples"
        self.bias = {str(i): -100 for i in tokenizer.all_special_ids} if tokenizer is not None else {}
        self.pool = ThreadPoolExecutor(max_workers=config.panel.http_concurrency)

    def close(self):
        self.pool.shutdown()

    def next_token(self, prefix: str):
        p = self.config.panel
        return openai_next_token(self.variant.http_url, self.variant.model_id, prefix, p.http_top_logprobs,
                                 self.bias, retries=p.http_retries)

    def forced(self, prefix: str, piece: str, token: int) -> float:
        """The exact log-probability of a token not among the listed alternatives: one more request that biases it
        up until it is the greedy token, whose unbiased log-probability the endpoint reports."""
        p = self.config.panel
        answer = openai_next_token(self.variant.http_url, self.variant.model_id, prefix, 1,
                                   {**self.bias, str(token): 100}, retries=p.http_retries)
        if answer is None or answer[0] != piece:
            raise RuntimeError(f"endpoint {self.variant.http_url}: a token biased up to be the greedy one was not "
                               f"({piece!r} asked, {answer[0] if answer else None!r} given)")
        return answer[1]

    def decide(self, prefix: str):
        """On the first prompt: exact if the endpoint's completions give log-probabilities, else sampling from then
        on (also when it refuses the request for them: 400, 404 or 422)."""
        try:
            listed = self.next_token(prefix)
        except EndpointError as error:
            if error.status not in (400, 404, 422):
                raise
            listed = None
        self.method = "tokens" if listed is not None else "samples"
        log.info("panel %s: scored by %s", self.variant.name, self.method)
        return listed

    def sample(self, chat, question, seed: int) -> str | None:
        g, p = self.config.generation, self.config.panel
        return parse_option(openai_chat(self.variant.http_url, self.variant.model_id, chat,
                                        g.max_new_tokens[question.question_type], g.temperature, g.top_p, seed,
                                        retries=p.http_retries), list(question.options))

    def distributions(self, respondent, questions: dict, prompts, seed_of
                      ) -> dict[str, tuple[np.ndarray, np.ndarray, int, str]]:
        """question_id -> (distribution in the bank's order, the same with the options reversed in the prompt, the
        count the method reports (exact: options bounded; sampled: samples naming no option), method).
        `prompts(respondent, question)` gives (order, chat) per order; `seed_of(qid, order_index, sample)` the seed
        of one sampled answer."""
        jobs = [(qid, index, order, chat) for qid in respondent.answers
                for index, (order, chat) in enumerate(prompts(respondent, questions[qid]))]
        if not jobs:
            return {}
        out: dict[str, list] = {qid: [None, None, 0] for qid in respondent.answers}
        steps = [option_steps(self.tokenizer, chat, list(order)) for _, _, order, chat in jobs] \
            if self.tokenizer is not None and self.method != "samples" else None
        listed = {}
        if self.method is None:
            first = steps[0][0][0][0]  # the first option's first prefix: the turn's start
            probe = self.decide(first)
            if probe is not None:
                listed[first] = probe
        if self.method == "tokens":
            prefixes = list(dict.fromkeys(step[0] for job in steps for option in job for step in option))
            todo = [prefix for prefix in prefixes if prefix not in listed]
            for prefix, answer in zip(todo, self.pool.map(self.next_token, todo)):
                if answer is None:
                    raise RuntimeError(f"endpoint {self.variant.http_url} gave no log-probabilities for a prompt "
                                       "after giving them for the first")
                listed[prefix] = answer
            values, unlisted = {}, []
            for prefix, piece, token, special in {step for job in steps for option in job for step in option}:
                value = listed_log_prob(listed[prefix], piece, special)
                if value is not None:
                    values[prefix, token] = (value, False)
                elif special:  # it cannot be made the greedy token (the turn would end): at most the least listed
                    values[prefix, token] = (min(listed[prefix][2].values(), default=listed[prefix][1]), True)
                else:
                    unlisted.append((prefix, piece, token))
            for (prefix, piece, token), value in zip(unlisted, self.pool.map(lambda u: self.forced(*u), unlisted)):
                values[prefix, token] = (value, False)
            for (qid, index, order, _), job in zip(jobs, steps):
                p, bounded = exact_distribution(job, values)
                by_option = dict(zip(order, p))
                out[qid][index] = np.array([by_option[o] for o in questions[qid].options])
                out[qid][2] += bounded
        else:
            k = self.config.panel.http_samples
            samples = [(job, s) for job in jobs for s in range(k)]
            answers = list(self.pool.map(lambda js: self.sample(js[0][3], questions[js[0][0]],
                                                                seed_of(js[0][0], js[0][1], js[1])), samples))
            counts = {(qid, index): np.zeros(len(questions[qid].options)) for qid, index, _, _ in jobs}
            for ((qid, index, _, _), _), answer in zip(samples, answers):
                if answer is None:
                    out[qid][2] += 1
                else:
                    counts[qid, index][list(questions[qid].options).index(answer)] += 1
            for (qid, index), c in counts.items():
                out[qid][index] = (c + 0.5) / (c.sum() + 0.5 * len(c))
        return {qid: (given, reversed_, count, self.method) for qid, (given, reversed_, count) in out.items()}
