"""What a panel is worth in real respondents: the prediction-powered estimators (by hand, against ppi_py, on
simulated pools where the truth is known) and a user's own files."""
import numpy as np
import pandas as pd
import pytest

from polypersona_utils.cli import main
from polypersona_utils.config_sections import PanelWorthConfig
from polypersona_utils.panel.estimates import (classical_estimate, power_tuning, ppi_estimate, read_answers,
                                               read_predictions, synthetic_estimate)
from polypersona_utils.panel.worth import effective_size, panel_worth, sample_draws, worth_draws, worth_predictors


def test_ppi_and_classical_by_hand():
    # Pool of 4; the first two sampled. Sample answers [1, 0], predictions [0.9, 0.1]: slope 0.2 / 0.16 = 1.25,
    # clipped to 1; rectifier (y - f) = [0.1, -0.1], mean 0, variance 0.01; estimate = mean of the pool's
    # predictions, 0.5; half-width 1.96 x sqrt(0.01 / 2) x sqrt((4 - 2) / 3).
    y, f, pool = np.array([1.0, 0.0]), np.array([0.9, 0.1]), np.array([0.9, 0.1, 0.8, 0.2])
    assert power_tuning(y, f) == 1.0
    estimate, low, high = ppi_estimate(y, f, pool)
    z = 1.959963984540054
    assert estimate == pytest.approx(0.5)
    assert high - estimate == pytest.approx(z * np.sqrt(0.01 / 2) * np.sqrt(2 / 3))
    mean, low, high = classical_estimate(y, 4)
    assert mean == 0.5 and high - mean == pytest.approx(z * np.sqrt(0.25 / 2) * np.sqrt(2 / 3))
    assert power_tuning(y, np.array([0.3, 0.3])) == 0.0  # predictions that do not vary: the classical estimate


def test_a_census_has_no_sampling_error():
    rng = np.random.default_rng(0)
    answers = np.eye(3)[rng.integers(0, 3, 50)]
    predictions = rng.dirichlet(np.ones(3), 50)
    estimates = worth_draws(np.ones((1, 50), bool), answers, predictions)
    for name in ("classical", "ppi"):
        estimate, half = estimates[name]
        np.testing.assert_allclose(estimate[0], answers.mean(axis=0), atol=1e-12)
        np.testing.assert_allclose(half[0], 0, atol=1e-12)


def test_the_vectorised_draws_equal_ppi_py_draw_by_draw():
    rng = np.random.default_rng(1)
    pool, options = 80, 3
    answers = np.eye(options)[rng.integers(0, options, pool)]
    predictions = 0.1 * answers + 0.9 * rng.dirichlet(np.ones(options), pool)  # weakly informative: lam inside (0, 1)
    sampled = sample_draws(pool, 25, 6, seed=3)
    sampled[5] = False
    sampled[5, :1] = True  # one sampled member: no estimate
    found = worth_draws(sampled, answers, predictions)
    lams = []
    for d in range(5):
        rows = sampled[d]
        for k in range(options):
            y, f = answers[rows, k], predictions[rows, k]
            lams.append(power_tuning(y, f))
            for name, plain in (("ppi", ppi_estimate(y, f, predictions[:, k])),
                                ("classical", classical_estimate(y, pool)),
                                ("synthetic", synthetic_estimate(predictions[:, k]))):
                estimate, half = found[name]
                assert estimate[d, k] == pytest.approx(plain[0], abs=1e-10)
                assert half[d, k] == pytest.approx((plain[2] - plain[1]) / 2, abs=1e-10)
    assert sum(0 < lam < 1 for lam in lams) >= 5  # the comparison covers lam strictly between the clips
    assert np.isnan(found["ppi"][0][5]).all() and np.isnan(found["classical"][1][5]).all()


def test_effective_size_by_hand():
    # As wide as the classical interval: n itself; half as wide with no correction term: four times n, capped by
    # the pool (a census).
    assert effective_size(np.array([1.0]), np.array([1.0]), 50, 300)[0] == pytest.approx(50)
    assert effective_size(np.array([0.5]), np.array([1.0]), 50, 10**9)[0] == pytest.approx(200, rel=1e-6)
    assert effective_size(np.array([0.0]), np.array([1.0]), 50, 300)[0] == pytest.approx(300)


def simulated_panel(pool: int = 600, seed: int = 0) -> pd.DataFrame:
    """A pool where each person's answer to two 3-option items depends on a subgroup (g) and a private trait;
    predictors: `good` (the true probabilities), `useless` (noise unrelated to the answer), `biased` (the true
    probabilities pulled towards the last option), `perfect` (the realised answer, lightly smoothed)."""
    rng = np.random.default_rng(seed)
    group = rng.integers(0, 2, pool)
    trait = rng.normal(size=pool)
    rows = []
    for item in ("q1", "q2"):
        logits = np.stack([np.zeros(pool), 1.5 * trait + 0.8 * group, -1.0 * trait + 0.3], axis=1)
        true = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        answers = np.array([rng.choice(3, p=p) for p in true])
        onehot = np.eye(3)[answers]
        predictors = {"good": true, "useless": rng.dirichlet(np.ones(3) * 5, pool),
                      "biased": 0.6 * true + 0.4 * np.array([0.0, 0.0, 1.0]),
                      "perfect": 0.9 * onehot + 0.1 / 3}
        for name, probabilities in predictors.items():
            rows += [{"variant": name, "persona_id": f"p{i:04d}", "question_id": item, "options": ["a", "b", "c"],
                      "probabilities": probabilities[i], "real_onehot": onehot[i], "g": f"g{group[i]}"}
                     for i in range(pool)]
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def simulated_worth():
    settings = PanelWorthConfig(sample_sizes=[50, 150], draws=200, min_cell=40, min_expected=20,
                                min_expected_answers=5)
    table = panel_worth(simulated_panel(), ["good", "useless", "biased", "perfect"], ("g",), settings, seed=7)
    return table.set_index(["predictor", "n", "estimator"])


def test_prediction_powered_intervals_cover_whatever_the_predictor(simulated_worth):
    for predictor in ("good", "useless", "biased", "perfect"):
        for n in (50, 150):
            row = simulated_worth.loc[(predictor, n, "ppi")]
            assert 0.92 <= row.coverage <= 0.98, (predictor, n, row.coverage)
            assert row.bias < 0.01


def test_a_biased_predictor_alone_misses_and_ppi_repairs_it(simulated_worth):
    synthetic = simulated_worth.loc[("biased", 150, "synthetic")]
    assert synthetic.bias > 0.05 and synthetic.coverage < 0.3
    assert simulated_worth.loc[("biased", 150, "ppi")].coverage >= 0.92


def test_a_useless_predictor_gains_nothing_and_loses_little(simulated_worth):
    # lam fitted on the same sample makes the rectifier's variance look a little smaller than it is: a useless
    # predictor shows a gain of a few per 100 at small n, as does the shuffled control, and nothing as n grows
    for predictor in ("useless", "shuffled-good"):
        assert 98 <= simulated_worth.loc[(predictor, 50, "ppi")].worth_per_100 <= 104
        assert 98 <= simulated_worth.loc[(predictor, 150, "ppi")].worth_per_100 <= 102
        assert simulated_worth.loc[(predictor, 50, "ppi")].coverage >= 0.92


def test_better_predictors_are_worth_more(simulated_worth):
    for n in (50, 150):
        good, perfect = (simulated_worth.loc[(p, n, "ppi")].worth_per_100 for p in ("good", "perfect"))
        assert 105 < good < perfect and perfect > 300


def test_predictors_are_the_models_then_the_named_references():
    present = ["smollm2-135m-zeroshot", "baseline-population", "smollm2-135m-lora", "baseline-logistic"]
    assert worth_predictors(present, ["baseline-logistic", "anchor-logistic-all"]) == [
        "smollm2-135m-zeroshot", "smollm2-135m-lora", "baseline-logistic"]


def test_a_sample_size_where_no_cell_enters_is_refused():
    frame = simulated_panel(pool=60)
    with pytest.raises(ValueError, match="at n = 10 no cell has 20 expected sampled members"):
        panel_worth(frame, ["good"], ("g",), PanelWorthConfig(sample_sizes=[10], min_cell=10), seed=0)


def test_a_sample_size_not_below_the_panel_is_refused():
    frame = simulated_panel(pool=60)
    with pytest.raises(ValueError, match="not below the panel's 60 respondents"):
        panel_worth(frame, ["good"], ("g",), PanelWorthConfig(sample_sizes=[60], min_cell=10), seed=0)


def test_the_control_is_the_first_predictor_shuffled(simulated_worth):
    assert {"shuffled-good"} == {p for p, _, _ in simulated_worth.index} - {"good", "useless", "biased", "perfect"}
    good, shuffled = (simulated_worth.loc[(p, 150, "synthetic")] for p in ("good", "shuffled-good"))
    assert good.bias == pytest.approx(shuffled.bias)  # the same probabilities, shuffled: the same cell means


def write_user_files(folder, pool: int = 120, sample: int = 60):
    frame = simulated_panel(pool=pool)
    good = frame[frame.variant == "good"]
    predictions = pd.DataFrame({"persona_id": good.persona_id, "question_id": good.question_id,
                                "options": good.options.map("|".join),
                                "probabilities": good.probabilities.map(lambda p: "|".join(f"{x:.6f}" for x in p)),
                                "g": good.g})
    people = sorted(good.persona_id.unique())[:sample]
    sampled = good[good.persona_id.isin(people)]
    answers = pd.DataFrame({"persona_id": sampled.persona_id, "question_id": sampled.question_id,
                            "real_option": [o[int(np.argmax(h))] for o, h in zip(sampled.options, sampled.real_onehot)]})
    predictions.to_csv(folder / "predictions.csv", index=False)
    answers.to_csv(folder / "answers.csv", index=False)
    return good


def test_a_users_files_give_estimates_per_item_subgroup_and_option(tmp_path):
    good = write_user_files(tmp_path)
    assert main(["panel-estimates", str(tmp_path / "predictions.csv"), str(tmp_path / "answers.csv"), str(tmp_path / "out.csv"),
                 "--subgroups", "g"]) == 0
    out = pd.read_csv(tmp_path / "out.csv")
    assert set(out.estimator) == {"classical", "synthetic", "ppi"}
    assert len(out) == 2 * 3 * 3 * 3  # items x (all, g0, g1) x options x estimators
    whole = out[(out.variable == "all") & (out.question_id == "q1")]
    assert set(whole.pool) == {120} and set(whole.sampled) == {60}
    synthetic = whole[whole.estimator == "synthetic"].set_index("option").estimate
    on_q1 = np.stack(good[good.question_id == "q1"].probabilities.to_numpy())
    np.testing.assert_allclose(synthetic.to_numpy(), on_q1.mean(axis=0), atol=1e-5)  # rounded to 6 places in the file
    assert (out.low <= out.estimate).all() and (out.estimate <= out.high).all()
    # the normal approximation is flagged where the sample holds fewer than 5 answers with or without the option
    counts = out[(out.estimator == "classical")].assign(chosen=lambda t: (t.estimate * t.sampled).round())
    assert (counts.normal_ok == ((counts.chosen >= 5) & (counts.sampled - counts.chosen >= 5))).all()
    assert not counts.normal_ok.all() and counts.normal_ok.any()


@pytest.mark.parametrize("edit, message", [
    (lambda p, a: (p.assign(probabilities="0.5|0.6|0.1"), a), r"predictions.csv: line 2: field 'probabilities'"),
    (lambda p, a: (p.drop(columns="options"), a), r"predictions.csv: line 1: missing column\(s\) \['options'\]"),
    (lambda p, a: (p, a.assign(real_option=["maybe"] + list(a.real_option[1:]))),
     r"answers.csv: line 2: field 'real_option'"),
    (lambda p, a: (p, a.assign(persona_id=["someone"] + list(a.persona_id[1:]))),
     r"answers.csv: line 2: .*has no prediction"),
    (lambda p, a: (p.assign(options=["b|a|c"] + list(p.options[1:])), a),
     r"predictions.csv: line 3: field 'options': .* differ from line 2"),
])
def test_bad_user_files_are_refused_naming_file_line_and_field(tmp_path, capsys, edit, message):
    write_user_files(tmp_path)
    predictions = pd.read_csv(tmp_path / "predictions.csv", dtype=str)
    answers = pd.read_csv(tmp_path / "answers.csv", dtype=str)
    predictions, answers = edit(predictions, answers)
    predictions.to_csv(tmp_path / "predictions.csv", index=False)
    answers.to_csv(tmp_path / "answers.csv", index=False)
    assert main(["panel-estimates", str(tmp_path / "predictions.csv"), str(tmp_path / "answers.csv"), str(tmp_path / "out.csv")]) == 2
    assert not (tmp_path / "out.csv").exists()
    import re
    assert re.search(message, capsys.readouterr().err)


def test_the_readers_keep_every_row(tmp_path):
    write_user_files(tmp_path)
    predictions = read_predictions(tmp_path / "predictions.csv")
    answers = read_answers(tmp_path / "answers.csv", predictions, tmp_path / "predictions.csv")
    assert len(predictions) == 240 and len(answers) == 120
