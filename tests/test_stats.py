"""BCa intervals (`stats.bca_interval`): coverage near nominal by simulation where the truth is known, and
intervals that contain their own estimate where the percentile interval does not."""
import numpy as np
import pytest

from polypersona_utils.panel.measures import bootstrap_weights
from polypersona_utils.stats import BCA, CONSTANT, NORMAL, bca_interval


def weighted_correlation(x, y):
    """statistic(weights): the Pearson correlation of (x, y) with each unit counted as often as its weight."""
    def statistic(weights):
        w = weights / weights.sum(axis=1, keepdims=True)
        mx, my = w @ x, w @ y
        cov = w @ (x * y) - mx * my
        return cov / np.sqrt((w @ x**2 - mx**2) * (w @ y**2 - my**2))
    return statistic


def test_bca_intervals_of_a_correlation_cover_at_their_nominal_rate():
    """300 samples of 40 units from a bivariate normal with correlation 0.6 (a skewed, biased statistic at this
    size); 95 % BCa intervals on 400 draws each. Coverage over 300 samples has a standard error of 1.3 points (0.92
    when written: within three standard errors of 0.95)."""
    rng = np.random.default_rng(0)
    rho, n, hits = 0.6, 40, 0
    for _ in range(300):
        x = rng.standard_normal(n)
        y = rho * x + np.sqrt(1 - rho**2) * rng.standard_normal(n)
        statistic = weighted_correlation(x, y)
        replicates = statistic(bootstrap_weights(n, 400, int(rng.integers(1 << 30))))
        low, high, _ = bca_interval(statistic, n, replicates)
        hits += low <= rho <= high
    assert 0.91 <= hits / 300 <= 0.99, hits / 300


def test_a_bca_interval_contains_its_estimate_and_a_constant_statistic_gives_a_point():
    """A correlation near 1 with an outlier (a strongly skewed bootstrap distribution): the BCa interval contains
    the estimate and lies below the draws' upper tail. A statistic that never moves (a persona-blind panel's
    slope) gives the point itself, not NaN."""
    rng = np.random.default_rng(3)
    n = 12
    x = rng.standard_normal(n)
    y = 0.97 * x + 0.1 * rng.standard_normal(n)
    y[0] += 3  # one outlier: its absence from a draw lifts the correlation
    statistic = weighted_correlation(x, y)
    estimate = float(statistic(np.ones((1, n)))[0])
    replicates = statistic(bootstrap_weights(n, 1000, 0))
    low, high, method = bca_interval(statistic, n, replicates)
    assert method == BCA and low <= estimate <= high < np.percentile(replicates, 97.5)
    assert bca_interval(lambda w: np.zeros(len(w)), n, np.zeros(50)) == (0.0, 0.0, CONSTANT)


def test_where_bca_is_undefined_the_interval_is_the_stated_normal_fallback():
    """The share of units a draw contains is 1 for the sample and below 1 for almost every draw: the estimate lies
    beyond every draw, BCa's bias correction is infinite (scipy gives NaN). The fallback is the normal interval
    around the estimate with the draws' standard deviation, computed here by hand."""
    n = 30

    def share_drawn(weights):
        return (weights > 0).mean(axis=1)
    replicates = share_drawn(bootstrap_weights(n, 500, 0))
    assert replicates.max() < 1.0
    low, high, method = bca_interval(share_drawn, n, replicates)
    half = 1.959964 * np.std(replicates, ddof=1)
    assert method == NORMAL
    assert (low, high) == pytest.approx((1.0 - half, 1.0 + half), abs=1e-6)


def test_a_bca_interval_that_leaves_out_its_estimate_falls_back_to_the_normal_interval():
    """Nearly every draw below the estimate, two above it (draws made elsewhere, as every table's are): BCa's bias
    correction then puts its interval among the top draws, above the estimate; the stated fallback contains it."""
    n = 30

    def share_drawn(weights):
        return (weights > 0).mean(axis=1)
    below = share_drawn(bootstrap_weights(n, 500, 0))
    low, high, method = bca_interval(share_drawn, n, np.concatenate([below, [1.0005, 1.0005]]))
    half = 1.959964 * np.std(np.concatenate([below, [1.0005, 1.0005]]), ddof=1)
    assert method == NORMAL and (low, high) == pytest.approx((1.0 - half, 1.0 + half), abs=1e-6)
    low, high, method = bca_interval(share_drawn, n, np.concatenate([below, [1.0005]]))
    assert method == "BCa" and low <= 1.0 <= high  # one draw above: BCa holds its estimate and is kept


def test_an_end_missing_its_estimate_by_float_rounding_is_moved_onto_it_and_a_real_miss_is_not():
    from polypersona_utils.stats import mean_with_interval, spanning

    third = [1 / 3] * 7  # a constant: its resampled means are summed in other orders
    estimate, low, high = mean_with_interval(np.log(third), [np.arange(7)[::-1], np.arange(7)])
    assert low <= estimate <= high
    assert spanning(1.0, 1.0 + 1e-16, 2.0) == (1.0, 1.0, 2.0) and spanning(1.0, 0.0, 1.0 - 1e-16) == (1.0, 0.0, 1.0)
    assert spanning(1.0, 1.1, 2.0) == (1.0, 1.1, 2.0)  # a biased statistic's interval may miss it: said, not moved
