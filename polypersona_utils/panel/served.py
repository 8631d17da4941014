"""A served model in the panel (a variant with `http_url`: vLLM, Ollama, a llama.cpp server, any OpenAI-compatible
endpoint), asked through the `openai` client with `panel.http_concurrency` requests in flight and
`panel.http_retries` retries with backoff.

Where the endpoint gives token log-probabilities (`panel.http_method: auto`), each prompt is one greedy request with
`logprobs` and `top_logprobs`: an option's probability is the product of its tokens' probabilities along the answer
the model gave, and where the option leaves that answer, the probability of the most likely listed token that
continues it (its later tokens are taken as certain: the endpoint does not say); the options' masses are then
normalised. Options that differ early ("Too little" / "Too much" differ at their second token) are scored exactly
when their diverging token is among the `top_logprobs`. Two requests a pair (both option orders). Where it gives
none (or `http_method: sampling`), `panel.http_samples` answers are sampled per order and parsed by the study's
parser, Jeffreys-smoothed ((count + 1/2) / (parsed + n/2)) so no option has zero mass. Each row says which method
scored it (`scored_by`); a prompt where no option has mass, or a sample that names none, counts as unparseable."""
from __future__ import annotations

import logging
import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..dataset.parsing import parse_option
from ..llm.backends import EndpointError, openai_chat, openai_token_logprobs

log = logging.getLogger(__name__)
METHODS = ("logprobs", "samples")


def option_probabilities(steps: list[tuple[str, float, dict]], options: list[str]) -> np.ndarray | None:
    """The options' distribution from a greedy answer's token log-probabilities (module docstring); None when no
    option has any mass (the answer names none and none is among the listed alternatives)."""
    mass = []
    for option in options:
        remaining, probability = option.casefold(), 1.0
        # whitespace the model writes before its answer (a line break, a space) is not part of any option
        first = next((i for i, (token, _, _) in enumerate(steps) if token.strip()), len(steps))
        for position, (token, logprob, alternatives) in enumerate(steps[first:]):
            if not remaining:
                break
            text = (lambda t: t.casefold().lstrip()) if position == 0 else (lambda t: t.casefold())
            piece = text(token)
            if piece and remaining.startswith(piece):
                probability *= math.exp(logprob)
                remaining = remaining[len(piece):]
                continue
            fitting = [lp for c, lp in alternatives.items() if text(c) and remaining.startswith(text(c))]
            probability *= math.exp(max(fitting)) if fitting else 0.0
            break
        mass.append(probability)
    total = sum(mass)
    return None if total <= 0 else np.array(mass) / total


def requests_per_pair(config, method: str) -> int:
    return 2 if method == "logprobs" else 2 * config.panel.http_samples


class ServedPanel:
    """One served variant's scoring session: the method, decided once (probed on the first prompt when `auto`),
    and the thread pool its requests share."""

    def __init__(self, config, variant):
        self.config, self.variant = config, variant
        self.method = None if config.panel.http_method == "auto" else "samples"
        self.pool = ThreadPoolExecutor(max_workers=config.panel.http_concurrency)

    def close(self):
        self.pool.shutdown()

    def logprobs(self, chat, question) -> list | None:
        g, p = self.config.generation, self.config.panel
        return openai_token_logprobs(self.variant.http_url, self.variant.model_id, chat,
                                     g.max_new_tokens[question.question_type], p.http_top_logprobs,
                                     retries=p.http_retries)

    def decide(self, chat, question) -> list | None:
        """On the first prompt: log-probabilities if the endpoint gives them, else sampling from then on (also when
        it refuses the request for them as malformed: 400 or 422)."""
        try:
            steps = self.logprobs(chat, question)
        except EndpointError as error:
            if error.status not in (400, 422):
                raise
            steps = None
        self.method = "logprobs" if steps is not None else "samples"
        log.info("panel %s: scored by %s", self.variant.name, self.method)
        return steps

    def sample(self, chat, question, seed: int) -> str | None:
        g, p = self.config.generation, self.config.panel
        return parse_option(openai_chat(self.variant.http_url, self.variant.model_id, chat,
                                        g.max_new_tokens[question.question_type], g.temperature, g.top_p, seed,
                                        retries=p.http_retries), list(question.options))

    def distributions(self, respondent, questions: dict, prompts, seed_of
                      ) -> dict[str, tuple[np.ndarray, np.ndarray, int, str]]:
        """question_id -> (distribution in the bank's order, the same with the options reversed in the prompt,
        unparseable prompts or samples, method). `prompts(respondent, question)` gives (order, chat) per order;
        `seed_of(qid, order_index, sample)` the seed of one sampled answer."""
        jobs = [(qid, index, order, chat) for qid in respondent.answers
                for index, (order, chat) in enumerate(prompts(respondent, questions[qid]))]
        if not jobs:
            return {}
        first = self.decide(jobs[0][3], questions[jobs[0][0]]) if self.method is None else None
        out: dict[str, list] = {qid: [None, None, 0] for qid in respondent.answers}
        if self.method == "logprobs":
            steps = [first] + list(self.pool.map(lambda j: self.logprobs(j[3], questions[j[0]]), jobs[1:])) \
                if first is not None else list(self.pool.map(lambda j: self.logprobs(j[3], questions[j[0]]), jobs))
            for (qid, index, order, _), answer in zip(jobs, steps):
                p = option_probabilities(answer, order) if answer else None  # an empty answer names no option
                if p is None:
                    out[qid][2] += 1
                    p = np.full(len(order), 1 / len(order))
                by_option = dict(zip(order, p))
                out[qid][index] = np.array([by_option[o] for o in questions[qid].options])
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
        return {qid: (given, reversed_, unparseable, self.method)
                for qid, (given, reversed_, unparseable) in out.items()}
