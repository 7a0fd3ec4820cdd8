"""The always-valid tests and the statistics under the A/B decision, against values
worked out by hand (the arithmetic is in the comments) or exactly, and A/A simulations
small enough for a unit test."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.stats import betabinom, binom

from shared.ab.sequential import (
    beta_binomial_p_value,
    normal_mixture_half_width,
    normal_mixture_p_value,
)
from shared.ab.statistics import (
    ArmCounts,
    PairedCounts,
    SampleSums,
    accuracy_difference_variance,
    mcnemar_p_value,
    mean_absolute_error_effect,
    mean_difference_effect,
    paired_accuracy_effect,
    pooled_z_test_p_value,
    sample_ratio_p_value,
    split_accuracy_effect,
    uneven_feedback_p_value,
    wilson_interval,
)


def test_normal_mixture_p_value_by_hand() -> None:
    # V = .0004, tau^2 = .0009, V + tau^2 = .0013;
    # log Lambda = .5 ln(.0004/.0013) + .05^2 * .0009 / (2 * .0004 * .0013)
    #            = -.589327 + 2.163462 = 1.574134; p = exp(-1.574134)
    assert normal_mixture_p_value(0.05, 0.0004, 0.03) == pytest.approx(0.207187, abs=1e-6)
    assert normal_mixture_p_value(0.0, 0.0004, 0.03) == 1.0


def test_normal_mixture_interval_by_hand_and_consistent_with_the_p_value() -> None:
    # sqrt(2 * .0004 * .0013 / .0009 * (ln 20 + .5 ln 3.25)) = sqrt(.00115556 * 3.585059)
    half = float(normal_mixture_half_width(0.0004, 0.03, 0.05))
    assert half == pytest.approx(0.064364, abs=1e-6)
    # The interval excludes 0 exactly when p <= alpha.
    assert normal_mixture_p_value(half, 0.0004, 0.03) == pytest.approx(0.05)


def test_beta_binomial_with_a_uniform_prior_by_hand() -> None:
    # Beta(1, 1): Bayes factor = B(9, 3) / 0.5^10 = (8! 2! / 11!) * 1024 = 1024 / 495
    p = beta_binomial_p_value(8, 10, null_p=0.5, concentration=2)
    assert p == pytest.approx(495 / 1024)
    # Truncated to p > 1/2: prior mass 1/2; posterior Beta(9, 3) mass above 1/2 is
    # P(Binomial(11, 1/2) <= 8) = 1981/2048; factor = (1/495)(1981/2048) / (1/2) * 1024
    one_sided = beta_binomial_p_value(8, 10, null_p=0.5, concentration=2, greater_only=True)
    assert one_sided == pytest.approx(495 / 1981)


def test_beta_binomial_against_scipy_distributions() -> None:
    # The two-sided factor is the beta-binomial probability of the count over the
    # binomial one (the binomial coefficient cancels): 25 of 30 against 1/2, Beta(5, 5).
    factor = betabinom.pmf(25, 30, 5, 5) / binom.pmf(25, 30, 0.5)
    p = beta_binomial_p_value(25, 30, null_p=0.5, concentration=10)
    assert p == pytest.approx(1 / factor)
    assert beta_binomial_p_value(0, 0, null_p=0.3, concentration=10) == 1.0


def test_one_sided_tests_see_nothing_in_the_other_direction() -> None:
    assert beta_binomial_p_value(0, 40, null_p=0.5, concentration=10, greater_only=True) == 1.0
    assert beta_binomial_p_value(0, 40, null_p=0.5, concentration=10) < 1e-6


def simulated_counts(
    rng: np.random.Generator, accuracy: float, tests: int, looks: int, per_look: int
) -> np.ndarray:
    return np.cumsum(rng.binomial(per_look, accuracy, size=(tests, looks)), axis=1)


def test_a_a_split_tests_rarely_conclude_however_often_they_look() -> None:
    # 300 A/A tests at 0.84, 20 looks of 100 labels per arm each.
    rng = np.random.default_rng(2026)
    tests, looks, per_look = 300, 20, 100
    labelled = per_look * np.arange(1, looks + 1)
    correct_a = simulated_counts(rng, 0.84, tests, looks, per_look)
    correct_b = simulated_counts(rng, 0.84, tests, looks, per_look)
    estimate = (correct_b - correct_a) / labelled
    variance = accuracy_difference_variance(correct_a, labelled, correct_b, labelled)
    sequential = normal_mixture_p_value(estimate, variance, 0.03)
    ever_sequential = (sequential <= 0.05).any(axis=1).mean()
    z_95 = 1.959963984540054
    ever_peeked = (np.abs(estimate) / np.sqrt(variance) >= z_95).any(axis=1).mean()
    assert ever_sequential <= 0.05
    # The test can fail: peeking at a fixed-horizon z-test concludes far more often.
    assert ever_peeked >= 3 * max(ever_sequential, 0.02)


def test_a_a_shadow_tests_rarely_conclude_however_often_they_look() -> None:
    # 300 A/A shadow tests, 5% discordant records, 20 looks of 200 records.
    rng = np.random.default_rng(2027)
    discordant = np.cumsum(rng.binomial(200, 0.05, size=(300, 20)), axis=1)
    wins_b = np.cumsum(rng.binomial(np.diff(discordant, prepend=0, axis=1), 0.5), axis=1)
    p = beta_binomial_p_value(wins_b, discordant, null_p=0.5, concentration=10)
    assert (p <= 0.05).any(axis=1).mean() <= 0.05


def test_wilson_interval_of_8_out_of_10() -> None:
    # p = .8, z^2 = 3.8415; centre = (.8 + .19208)/1.38415 = .71674,
    # half = 1.96 * sqrt(.016 + .009604)/1.38415 = .22658
    low, high = wilson_interval(8, 10)  # type: ignore[misc]
    assert (low, high) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 0) is None


def test_sample_ratio_mismatch_600_against_400_on_an_even_split() -> None:
    # chi2 = 100^2/500 * 2 = 40, one degree of freedom
    assert sample_ratio_p_value(600, 400, 0.5) == pytest.approx(2.54e-10, rel=1e-2)
    assert sample_ratio_p_value(700, 300, 0.3) == pytest.approx(1.0)
    assert sample_ratio_p_value(0, 0, 0.5) is None


def test_uneven_feedback_by_chi_square_and_by_fisher() -> None:
    # labelled 90/100 against 60/100: expected 75 and 25 in each row,
    # chi2 = 2 * (15^2/75 + 15^2/25) = 24, p = erfc(sqrt(12))
    a, b = ArmCounts(100, 0, 90, 0), ArmCounts(100, 0, 60, 0)
    assert uneven_feedback_p_value(a, b) == pytest.approx(math.erfc(math.sqrt(12)))
    # 3 of 3 against 0 of 3 (expected counts 1.5: Fisher): two tables of 20 as extreme
    small = uneven_feedback_p_value(ArmCounts(3, 0, 3, 0), ArmCounts(3, 0, 0, 0))
    assert small == pytest.approx(0.1)
    assert uneven_feedback_p_value(ArmCounts(3, 0, 3, 0), ArmCounts(3, 0, 3, 0)) is None


def test_label_coverage_counts_only_eligible_requests() -> None:
    # 1,000 answered, 400 of them past the label delay, 300 labelled.
    arm = ArmCounts(1000, 0, 300, 250, eligible=400)
    assert arm.labellable == 400
    assert ArmCounts(1000, 100, 300, 250).labellable == 900


def test_mcnemar_exact_by_hand() -> None:
    # 2 against 10 discordant pairs: 2 * P(Binomial(12, 1/2) <= 2) = 2 * 79/4096
    assert mcnemar_p_value(PairedCounts(50, 2, 10, 5)) == pytest.approx(158 / 4096)
    assert mcnemar_p_value(PairedCounts(50, 0, 0, 5)) == 1.0


def test_split_effect_carries_both_the_always_valid_and_the_fixed_horizon_p() -> None:
    a, b = ArmCounts(100, 0, 100, 80), ArmCounts(100, 0, 100, 90)
    effect = split_accuracy_effect(a, b, tau=0.03, alpha=0.05)
    # pooled .85; se = sqrt(.85 * .15 * 2/100) = .050498; z = .1/.050498 = 1.9803
    assert effect.fixed_horizon_p_value == pytest.approx(0.04768, abs=1e-5)
    assert effect.estimate == pytest.approx(0.1)
    # Significant at one planned look, not by the always-valid standard.
    assert effect.p_value is not None and effect.p_value > 0.05
    assert effect.low is not None and effect.high is not None and effect.low < 0 < effect.high
    assert pooled_z_test_p_value(ArmCounts(10, 0, 10, 10), ArmCounts(20, 0, 20, 20)) == 1.0


def test_paired_effect_of_a_planted_winner() -> None:
    pairs = PairedCounts(both_correct=800, only_a_correct=10, only_b_correct=40, both_wrong=150)
    effect = paired_accuracy_effect(pairs, tau=0.03, concentration=10, alpha=0.05)
    assert effect.estimate == pytest.approx(0.03)
    assert effect.p_value is not None and effect.p_value < 0.01
    assert effect.fixed_horizon_p_value is not None
    assert effect.fixed_horizon_p_value < effect.p_value  # the price of looking any time
    assert effect.low is not None and 0 < effect.low < 0.03


def test_sample_sums_by_hand() -> None:
    # 1, 2, 3, 4: sum 10, squares 30; variance (30 - 100/4)/3
    sums = SampleSums(4, 10.0, 30.0)
    assert (sums.mean, sums.variance) == (2.5, pytest.approx(5 / 3))
    assert SampleSums(1, 2.0, 4.0).variance is None and SampleSums().mean is None


def test_mean_difference_by_hand() -> None:
    # A 1..4, B 2..5: difference 1, variance (5/3)/4 * 2 = .8333, z = 1.0954;
    # tau = .5 * 2.5 makes Lambda < 1, so the always-valid p is 1.
    effect = mean_difference_effect(
        SampleSums(4, 10, 30), SampleSums(4, 14, 54), metric="x", tau_relative=0.5, alpha=0.05
    )
    assert effect.estimate == pytest.approx(1.0)
    assert effect.fixed_horizon_p_value == pytest.approx(0.27332, abs=1e-5)
    assert effect.p_value == 1.0


def absolute_error_sums(rng: np.random.Generator, scale: float, n: int) -> SampleSums:
    errors = np.abs(rng.normal(0, scale, n))
    return SampleSums(n, float(errors.sum()), float((errors**2).sum()))


def test_a_regressor_with_a_smaller_mean_absolute_error_is_found() -> None:
    rng = np.random.default_rng(7)
    a, b = absolute_error_sums(rng, 10.0, 3000), absolute_error_sums(rng, 9.0, 3000)
    effect = mean_absolute_error_effect(a, b)
    assert effect.estimate is not None and effect.estimate < 0
    assert effect.p_value is not None and effect.p_value <= 0.05
    assert effect.high is not None and effect.high < 0
    same = mean_absolute_error_effect(a, absolute_error_sums(rng, 10.0, 3000))
    assert same.p_value is not None and same.p_value > 0.05
