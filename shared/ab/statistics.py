"""A/B test statistics: per-arm summaries, the checks that make a comparison fair, and
the effect of B against A with an always-valid interval. Pure functions: no Celery, no
database, no scikit-learn; the inputs are the counts and sums SQL aggregates give.

Library methods are used wherever a library has them (scipy's Wilson interval, binomial,
chi-square and Fisher's exact tests; McNemar's exact test is the binomial test of the
discordant pairs); only the always-valid tests are written here, in
``shared.ab.sequential``. scipy rather than statsmodels: producers decide and show tests
too, and statsmodels would bring pandas into a producer's install.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import binomtest, chi2_contingency, chisquare, fisher_exact, norm

from shared.ab.sequential import (
    Array,
    beta_binomial_p_value,
    normal_mixture_half_width,
    normal_mixture_p_value,
)

# Below this expected count a cell makes the chi-square approximation poor (the usual
# textbook rule), so the uneven-feedback check uses Fisher's exact test instead.
MIN_EXPECTED_FOR_CHI_SQUARE = 5


@dataclass(frozen=True)
class SampleSums:
    """A sample as sufficient statistics (what SQL's count, sum and sum of squares give):
    worker latencies in seconds, or a regressor's absolute errors."""

    n: int = 0
    total: float = 0.0
    total_squares: float = 0.0

    @property
    def mean(self) -> float | None:
        return self.total / self.n if self.n else None

    @property
    def variance(self) -> float | None:
        """The unbiased sample variance (None below two observations)."""
        if self.n < 2:
            return None
        return max(0.0, (self.total_squares - self.total**2 / self.n) / (self.n - 1))


@dataclass(frozen=True)
class ArmCounts:
    """One arm's counts over the test's window.

    ``eligible``: answered requests old enough for their label to have arrived (the
    label delay, filtered in SQL); None counts every answered request. ``labelled`` and
    ``correct`` count answered requests with feedback among those; for a regressor,
    ``absolute_error`` sums |true value - prediction| over the labelled ones.
    """

    requests: int
    errors: int
    labelled: int
    correct: int
    latency: SampleSums = SampleSums()
    eligible: int | None = None
    absolute_error: SampleSums = SampleSums()

    @property
    def answered(self) -> int:
        return self.requests - self.errors

    @property
    def labellable(self) -> int:
        return self.answered if self.eligible is None else self.eligible


@dataclass(frozen=True)
class PairedCounts:
    """A shadow test's records, scored by both arms.

    Correctness on the records both answered and feedback labelled (a 2x2 table), the
    records where exactly one arm failed, and how often the two predictions agreed on
    the records both answered (labelled or not). For regressors, over the labelled
    records both answered: each model's absolute errors, and their difference per
    record (|error of B| - |error of A|), which the paired test is about.
    """

    both_correct: int
    only_a_correct: int
    only_b_correct: int
    both_wrong: int
    only_a_errors: int = 0
    only_b_errors: int = 0
    compared: int = 0
    agreed: int = 0
    absolute_error_a: SampleSums = SampleSums()
    absolute_error_b: SampleSums = SampleSums()
    error_difference: SampleSums = SampleSums()

    @property
    def labelled(self) -> int:
        return self.both_correct + self.only_a_correct + self.only_b_correct + self.both_wrong

    @property
    def discordant(self) -> int:
        return self.only_a_correct + self.only_b_correct


@dataclass(frozen=True)
class Effect:
    """B's metric minus A's, with an interval and p-value valid at any look."""

    metric: str
    estimate: float | None
    low: float | None
    high: float | None
    p_value: float | None  # always-valid
    fixed_horizon_p_value: float | None  # for reference: valid only at one planned look
    method: str


def wilson_interval(successes: int, trials: int, alpha: float = 0.05) -> list[float] | None:
    """Wilson score interval of a proportion (sound at 0, 1 and small counts)."""
    if trials == 0:
        return None
    interval = binomtest(successes, trials).proportion_ci(1 - alpha, method="wilson")
    return [float(interval.low), float(interval.high)]


def arm_summary(counts: ArmCounts, *, regressor: bool = False) -> dict[str, Any]:
    """One arm's figures for the evidence and the plot, JSON-ready (a regressor has a
    mean absolute error where a classifier has an accuracy)."""
    latency = counts.latency
    variance = latency.variance
    if regressor:
        metric: dict[str, Any] = {"mean_absolute_error": counts.absolute_error.mean}
    else:
        metric = {
            "accuracy": _ratio(counts.correct, counts.labelled),
            "accuracy_interval": wilson_interval(counts.correct, counts.labelled),
        }
    return {
        "requests": counts.requests,
        "errors": counts.errors,
        "answered": counts.answered,
        "eligible": counts.labellable,
        "labelled": counts.labelled,
        "correct": counts.correct,
        **metric,
        "error_rate": _ratio(counts.errors, counts.requests),
        "error_rate_interval": wilson_interval(counts.errors, counts.requests),
        "label_coverage": _ratio(counts.labelled, counts.labellable),
        "latency": {
            "n": latency.n,
            "mean": latency.mean,
            "sd": math.sqrt(variance) if variance is not None else None,
        },
    }


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def sample_ratio_p_value(requests_a: int, requests_b: int, split: float) -> float | None:
    """Chi-square goodness of fit of the arms' traffic to the configured split (B's share).
    A tiny p means assignment is broken, whatever the accuracies say."""
    total = requests_a + requests_b
    if total == 0:
        return None
    expected = [total * (1 - split), total * split]
    return float(chisquare([requests_a, requests_b], f_exp=expected).pvalue)


def uneven_feedback_p_value(a: ArmCounts, b: ArmCounts) -> float | None:
    """Whether feedback is missing more in one arm than the other: labelled against
    unlabelled by arm. Uneven labelling biases any accuracy comparison (the labelled
    requests of each arm are then different kinds of requests)."""
    table = np.array(
        [
            [a.labelled, max(0, a.labellable - a.labelled)],
            [b.labelled, max(0, b.labellable - b.labelled)],
        ]
    )
    if (table.sum(axis=0) == 0).any() or (table.sum(axis=1) == 0).any():
        return None  # a row or column of zeros: nothing to compare
    expected = np.outer(table.sum(axis=1), table.sum(axis=0)) / table.sum()
    if expected.min() < MIN_EXPECTED_FOR_CHI_SQUARE:
        return float(fisher_exact(table).pvalue)
    return float(chi2_contingency(table, correction=False).pvalue)


def accuracy_difference_variance(
    correct_a: Array, labelled_a: Array, correct_b: Array, labelled_b: Array
) -> Array:
    """Variance of accuracy B - accuracy A between independent arms. Each accuracy's
    variance is taken at (correct + 1) / (labelled + 2), so that an arm that is all
    right or all wrong so far does not claim a variance of 0."""
    smoothed_a = (np.asarray(correct_a) + 1) / (np.asarray(labelled_a) + 2)
    smoothed_b = (np.asarray(correct_b) + 1) / (np.asarray(labelled_b) + 2)
    return smoothed_a * (1 - smoothed_a) / labelled_a + smoothed_b * (1 - smoothed_b) / labelled_b


def split_accuracy_effect(a: ArmCounts, b: ArmCounts, *, tau: float, alpha: float) -> Effect:
    """Accuracy B - A between two independent arms: the always-valid normal-mixture
    p-value and interval, and the pooled z-test a fixed-horizon test would use."""
    method = f"normal-mixture SPRT, tau={tau} (always valid); pooled z-test (fixed horizon)"
    if a.labelled == 0 or b.labelled == 0:
        return Effect("accuracy B - A", None, None, None, None, None, method)
    estimate = b.correct / b.labelled - a.correct / a.labelled
    variance = accuracy_difference_variance(a.correct, a.labelled, b.correct, b.labelled)
    return _mixture_effect(
        "accuracy B - A",
        estimate,
        variance,
        tau=tau,
        alpha=alpha,
        fixed_horizon_p_value=pooled_z_test_p_value(a, b),
        method=method,
    )


def pooled_z_test_p_value(a: ArmCounts, b: ArmCounts) -> float | None:
    """Two-sided pooled two-proportion z-test: the fixed-horizon test."""
    if a.labelled == 0 or b.labelled == 0:
        return None
    if a.correct + b.correct in (0, a.labelled + b.labelled):
        return 1.0  # both arms all right or all wrong: no difference to see
    pooled = (a.correct + b.correct) / (a.labelled + b.labelled)
    spread = math.sqrt(pooled * (1 - pooled) * (1 / a.labelled + 1 / b.labelled))
    z = (b.correct / b.labelled - a.correct / a.labelled) / spread
    return float(2 * norm.sf(abs(z)))


def paired_accuracy_effect(
    pairs: PairedCounts, *, tau: float, concentration: float, alpha: float
) -> Effect:
    """Accuracy B - A on the same records (shadow): McNemar's exact test for the fixed
    horizon, and for any look the exact always-valid test on the discordant pairs.

    Given n discordant records, the ones B got right are Binomial(n, 1/2) if the models
    are equally accurate, so the beta-binomial mixture test applies exactly. Its
    interval is the normal-mixture one on the per-record difference (-1, 0 or +1).
    """
    method = (
        f"beta-binomial mixture on discordant pairs, concentration={concentration} "
        f"(always valid); McNemar exact (fixed horizon); interval: normal mixture, tau={tau}"
    )
    n = pairs.labelled
    if n == 0:
        return Effect("paired accuracy B - A", None, None, None, None, None, method)
    wins_b, wins_a = pairs.only_b_correct, pairs.only_a_correct
    estimate = (wins_b - wins_a) / n
    # Half a record added to each discordant cell keeps the variance above 0 when no
    # pair is discordant yet, or all discordant pairs went one way.
    discordant_share = (wins_b + wins_a + 1) / (n + 1)
    variance = (discordant_share - ((wins_b - wins_a) / (n + 1)) ** 2) / n
    half_width = float(normal_mixture_half_width(variance, tau, alpha))
    p_value = float(
        beta_binomial_p_value(wins_b, wins_b + wins_a, null_p=0.5, concentration=concentration)
    )
    return Effect(
        "paired accuracy B - A",
        estimate,
        estimate - half_width,
        estimate + half_width,
        p_value,
        mcnemar_p_value(pairs),
        method,
    )


def mcnemar_p_value(pairs: PairedCounts) -> float:
    """McNemar's exact test of the paired 2x2 table of correctness: the binomial test of
    the discordant pairs against 1/2 (as statsmodels' ``mcnemar(exact=True)``)."""
    if pairs.discordant == 0:
        return 1.0  # no record tells the models apart
    return float(binomtest(pairs.only_b_correct, pairs.discordant, 0.5).pvalue)


def agreement_rate(pairs: PairedCounts) -> float | None:
    """Share of records both answered on which the two models predicted the same."""
    return _ratio(pairs.agreed, pairs.compared)


def mean_difference_effect(
    a: SampleSums,
    b: SampleSums,
    *,
    metric: str,
    tau_relative: float,
    alpha: float,
    a_factor: float = 1.0,
    slack: float = 0.0,
) -> Effect:
    """Mean of B minus ``a_factor`` times the mean of A, less ``slack``, between
    independent samples,
    always valid, from sufficient statistics with estimated variances (the asymptotic
    confidence sequence of Waudby-Smith et al. 2023, as a normal mixture).

    The mixture's tau is ``tau_relative`` times A's mean, so one setting fits any unit
    (seconds, dollars): "differences of about this share of the control's mean".
    ``a_factor`` above 1 tests against a margin, e.g. 1.2 for "B more than 20% worse";
    ``slack`` adds an absolute one ("and by more than 1 ms").
    """
    method = f"normal-mixture SPRT, tau={tau_relative} x mean of A (always valid); z-test"
    var_a, var_b = a.variance, b.variance
    if var_a is None or var_b is None or a.mean is None or b.mean is None:
        return Effect(metric, None, None, None, None, None, method)
    estimate = b.mean - a_factor * a.mean - slack
    variance = var_b / b.n + a_factor**2 * var_a / a.n
    tau = tau_relative * abs(a.mean)
    if variance == 0 or tau == 0:
        # Constant samples: no noise to test against; report the difference only.
        return Effect(metric, estimate, estimate, estimate, None, None, method)
    fixed = float(2 * norm.sf(abs(estimate) / math.sqrt(variance)))
    return _mixture_effect(
        metric,
        estimate,
        variance,
        tau=tau,
        alpha=alpha,
        fixed_horizon_p_value=fixed,
        method=method,
    )


def paired_mean_difference_effect(
    differences: SampleSums,
    *,
    metric: str,
    scale: float | None,
    tau_relative: float,
    alpha: float,
) -> Effect:
    """Mean of per-record differences B - A on the same records (a shadow test of
    regressors), always valid as ``mean_difference_effect`` is; the mixture's tau is
    ``tau_relative`` times ``scale`` (A's mean on those records)."""
    method = f"normal-mixture SPRT on paired differences, tau={tau_relative} x A (always valid)"
    variance = differences.variance
    if variance is None or differences.mean is None or scale is None:
        return Effect(metric, None, None, None, None, None, method)
    estimate = differences.mean
    variance_of_mean = variance / differences.n
    tau = tau_relative * abs(scale)
    if variance_of_mean == 0 or tau == 0:
        return Effect(metric, estimate, estimate, estimate, None, None, method)
    fixed = float(2 * norm.sf(abs(estimate) / math.sqrt(variance_of_mean)))
    return _mixture_effect(
        metric,
        estimate,
        variance_of_mean,
        tau=tau,
        alpha=alpha,
        fixed_horizon_p_value=fixed,
        method=method,
    )


def mean_absolute_error_effect(
    a: SampleSums, b: SampleSums, *, tau_relative: float = 0.05, alpha: float = 0.05
) -> Effect:
    """For regressors: MAE of B minus MAE of A (negative: B is better), from each arm's
    count, sum and sum of squares of absolute errors on its labelled requests.
    tau_relative=0.05: the mixture is tuned to MAE differences of about 5% of A's."""
    return mean_difference_effect(
        a, b, metric="mean absolute error B - A", tau_relative=tau_relative, alpha=alpha
    )


def _mixture_effect(
    metric: str,
    estimate: float,
    variance: float,
    *,
    tau: float,
    alpha: float,
    fixed_horizon_p_value: float | None,
    method: str,
) -> Effect:
    half_width = float(normal_mixture_half_width(variance, tau, alpha))
    return Effect(
        metric,
        float(estimate),
        float(estimate - half_width),
        float(estimate + half_width),
        float(normal_mixture_p_value(estimate, variance, tau)),
        fixed_horizon_p_value,
        method,
    )
