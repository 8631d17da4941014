"""Metric functions on hand-computed cases; each expected value carries the arithmetic behind it."""

import numpy as np
import pytest

from polypersona_utils.dataset.parsing import parse_option
from polypersona_utils.evaluation import metrics
from polypersona_utils.stats import mean_with_interval, persona_bootstrap_indices


def test_identical_texts_score_one():
    text = ["I think we spend too little on schools."]
    assert metrics.sentence_bleu_nltk(text, text)[0] == pytest.approx(1.0)
    assert all(v[0] == pytest.approx(1.0) for v in metrics.rouge(text, text).values())
    assert metrics.length_similarity(text, text)[0] == 1.0
    assert metrics.sentiment_similarity(text, text)[0] == 1.0


def test_nltk_bleu_with_method1_smoothing():
    # 1-grams the/cat/here 3/4, 2-grams "the cat" 1/3, 3-grams 0/2 and 4-grams 0/1 -> method1 puts epsilon 0.1
    # over the count: 0.1/2 and 0.1/1; brevity penalty 1: BLEU = (3/4 * 1/3 * 0.05 * 0.1) ** (1/4) = 0.18803.
    expected = (3 / 4 * 1 / 3 * 0.1 / 2 * 0.1 / 1) ** 0.25
    assert metrics.sentence_bleu_nltk(["the cat sat here"], ["the cat is here"])[0] == pytest.approx(expected)


def test_disjoint_texts_score_zero():
    # NLTK returns 0 outright when no unigram matches, whatever the smoothing.
    assert metrics.sentence_bleu_nltk(["a b c d"], ["e f g h"])[0] == 0.0
    assert metrics.rouge(["a b c d"], ["e f g h"])["rouge1"][0] == 0.0


def test_nltk_bleu_lowercases_and_empty_prediction_scores_zero():
    assert metrics.sentence_bleu_nltk(["THE CAT SAT ON THE MAT"], ["the cat sat on the mat"])[0] == pytest.approx(1)
    assert metrics.sentence_bleu_nltk([""], ["the cat"])[0] == 0.0


def test_known_sacrebleu_value():
    # 13a tokens, 6 each: 1-gram 5/6, 2-gram 3/5, 3-gram 1/4, 4-gram 0/3 -> 'exp' smoothing 1/(2 * 3);
    # BP = 1: 100 * (5/6 * 3/5 * 1/4 * 1/6) ** (1/4) = 37.99.
    score, signature = metrics.sacrebleu_corpus(["the cat sat on the mat"], ["the cat is on the mat"])
    assert score == pytest.approx(100 * (5 / 6 * 3 / 5 * 1 / 4 * 1 / 6) ** 0.25, abs=1e-6)
    assert "tok:13a" in signature and "smooth:exp" in signature and "case:mixed" in signature


def test_rouge_uses_the_stemmer():
    # "cats" stems to "cat": with the stemmer all three unigrams match; without it two of three.
    assert metrics.rouge(["the cats sat"], ["the cat sat"], use_stemmer=True)["rouge1"][0] == pytest.approx(1.0)
    assert metrics.rouge(["the cats sat"], ["the cat sat"], use_stemmer=False)["rouge1"][0] == pytest.approx(2 / 3)


def test_bertscore_is_per_example_and_identical_scores_one():
    f1 = metrics.bertscore_f1(["I like tea.", "The weather is cold.", ""], ["I like tea.", "I enjoy football.", "x"])
    assert f1.shape == (3,) and f1[0] == pytest.approx(1.0, abs=1e-4)
    assert 0 < f1[1] < f1[0] and f1[2] == 0.0  # per example, never one batch mean; an empty answer scores 0


@pytest.mark.parametrize("prediction, reference, expected", [
    ("a b", "a b c d", 0.5),  # 1 - |2 - 4| / 4
    ("", "", 1.0),  # both empty: identical
    ("", "a", 0.0),  # 1 - |0 - 1| / 1
])
def test_length_similarity(prediction, reference, expected):
    assert metrics.length_similarity([prediction], [reference])[0] == pytest.approx(expected)


def test_sentence_count_similarity_and_counter():
    assert metrics.count_sentences("One. Two! Three?") == 3 and metrics.count_sentences("") == 0
    assert metrics.sentence_count_similarity(["One. Two!"], ["One."])[0] == pytest.approx(0.5)  # 1 - 1/2


def test_sentiment_similarity_bounds():
    opposite = metrics.sentiment_similarity(["I love this, it is wonderful."], ["I hate this, it is awful."])[0]
    assert 0 <= opposite < 0.3  # compounds near +0.8 and -0.8: 1 - 1.6 / 2 = 0.2
    assert metrics.sentiment_similarity([""], [""])[0] == 1.0  # both compound 0


def test_wasserstein_alignment_hand_cases():
    assert metrics.wasserstein_alignment([1, 0, 0], [0, 0, 1]) == 0.0  # all mass moved K - 1 = 2 steps
    assert metrics.wasserstein_alignment([2, 1, 1], [2, 1, 1]) == 1.0
    # CDFs (0.5, 1.0) and (0, 0.5): W1 = 0.5 + 0.5 = 1, W1_max = 2 -> 0.5
    assert metrics.wasserstein_alignment([0.5, 0.5, 0], [0, 0.5, 0.5]) == pytest.approx(0.5)


def test_jensen_shannon_distance():
    assert metrics.jensen_shannon_distance([1, 0], [0, 1]) == pytest.approx(1.0)  # disjoint, base 2
    assert metrics.jensen_shannon_distance([0.3, 0.7], [0.3, 0.7]) == pytest.approx(0.0, abs=1e-12)


def test_distinct_n():
    assert metrics.distinct_n(["a b a b"], 1) == 0.5  # 2 distinct of 4 unigrams
    assert metrics.distinct_n(["a b a b"], 2) == pytest.approx(2 / 3)  # ab, ba, ab


def test_bootstrap_resamples_personas_deterministically():
    personas = ["p1", "p1", "p2", "p3", "p3", "p3"]
    values = np.array([1, 1, 0, 0.5, 0.5, 0.5])
    a = persona_bootstrap_indices(personas, 200, seed=9)
    b = persona_bootstrap_indices(personas, 200, seed=9)
    assert len(a) == len(b) == 200 and all(np.array_equal(x, y) for x, y in zip(a, b))
    for idx in a[:20]:  # a persona brings all its rows or none
        counts = {p: sum(personas[i] == p for i in idx) for p in set(personas)}
        assert all(counts[p] % personas.count(p) == 0 for p in counts)
    mean, low, high = mean_with_interval(values, a)
    assert mean == pytest.approx(values.mean()) and low <= mean <= high
    assert mean_with_interval(values, persona_bootstrap_indices(personas, 200, seed=10)) != (mean, low, high)


@pytest.mark.parametrize("answer, options, expected", [
    ("Too little.", ["Too little", "About right", "Too much"], "Too little"),
    ("I think we spend too much money on it.", ["Too little", "About right", "Too much"], "Too much"),
    ("About right, I'd say.", ["Too little", "About right", "Too much"], "About right"),
    ("Yes, I do.", ["Yes", "No"], "Yes"),
    ("No.", ["Yes", "No"], "No"),
    ("I strongly agree with that statement.", ["Strongly disagree", "Disagree", "Neither agree nor disagree",
                                               "Agree", "Strongly agree"], "Strongly agree"),
    ("Agree or disagree? Hard to say.", ["Disagree", "Agree"], None),  # names both: not guessed
    ("It depends on the year.", ["Yes", "No"], None),
    ("", ["Yes", "No"], None),
])
def test_option_parser_on_real_phrasings(answer, options, expected):
    assert parse_option(answer, options) == expected
