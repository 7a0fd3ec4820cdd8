"""Always-valid tests: p-values and confidence intervals that stay valid however often
they are looked at, so a test may be stopped at any evaluation, by beat or by a person.

No library we know of has these (statsmodels and scipy test at one fixed sample size),
so they are written here from their papers, each named where it is used. Both are
nonnegative martingales under the null hypothesis (or asymptotically so), and Ville's
inequality gives P(the statistic ever reaches 1/alpha) <= alpha: rejecting when
``p <= alpha`` at any look, or at a look chosen by peeking, errs at most alpha.

Every function takes numpy arrays as well as numbers, so the simulation benchmark runs
the very same code over thousands of simulated tests at once.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.special import betaincc, betaln

Array = Any  # a float or a numpy array of floats


def normal_mixture_p_value(estimate: Array, variance: Array, tau: Array) -> Array:
    """Always-valid two-sided p-value of ``estimate == 0``.

    The mixture sequential probability ratio test of Johari, Pekelis and Walsh,
    "Always valid inference" (2017, Optimizely), eq. 11, for an estimate that is
    approximately normal with the given variance, mixed over a N(0, tau^2) prior on the
    true effect:

        Lambda = sqrt(V / (V + tau^2)) * exp(estimate^2 * tau^2 / (2 V (V + tau^2)))

    and p = min(1, 1 / Lambda). With a plug-in variance this is the asymptotic
    confidence sequence of Waudby-Smith et al. (2023, "Time-uniform central limit theory
    and asymptotic confidence sequences", as Eppo uses): valid as counts grow, which is
    why the decision also asks for a minimum sample.
    """
    estimate, variance, tau = np.broadcast_arrays(*map(np.asarray, (estimate, variance, tau)))
    total = variance + tau**2
    log_ratio = 0.5 * np.log(variance / total) + estimate**2 * tau**2 / (2 * variance * total)
    return np.minimum(1.0, np.exp(-log_ratio))


def normal_mixture_half_width(variance: Array, tau: Array, alpha: float) -> Array:
    """Half-width of the always-valid confidence interval that goes with
    ``normal_mixture_p_value``: the effects theta with Lambda(estimate - theta) < 1/alpha,
    so the interval excludes 0 exactly when p <= alpha."""
    variance, tau = np.broadcast_arrays(np.asarray(variance), np.asarray(tau))
    total = variance + tau**2
    return np.sqrt(
        2 * variance * total / tau**2 * (np.log(1 / alpha) + 0.5 * np.log(total / variance))
    )


def beta_binomial_p_value(
    successes: Array,
    trials: Array,
    *,
    null_p: float,
    concentration: float,
    greater_only: bool = False,
) -> Array:
    """Always-valid p-value that successes ~ Binomial(trials, null_p), for Bernoulli
    outcomes that arrive one at a time (exact, not asymptotic).

    The Bayes factor of a Beta(concentration * null_p, concentration * (1 - null_p))
    mixture of alternatives against the point null is a nonnegative martingale with
    mean 1 under the null (Robbins 1970, "Statistical methods related to the law of the
    iterated logarithm"; Howard et al. 2021, "Time-uniform, nonparametric, nonasymptotic
    confidence sequences", section 3), so p = min(1, 1 / Bayes factor) is always valid.
    With ``greater_only`` the prior is truncated to p > null_p: a one-sided test with all
    its power on that side (still a mixture of likelihood ratios, so still a martingale).

    ``concentration`` (a + b of the prior) says how far from null_p the effects we want
    to catch are: the prior's standard deviation is about
    sqrt(null_p (1 - null_p) / concentration).
    """
    k, n = np.broadcast_arrays(np.asarray(successes, float), np.asarray(trials, float))
    a, b = concentration * null_p, concentration * (1 - null_p)
    log_null = k * np.log(null_p) + (n - k) * np.log1p(-null_p)
    log_mixture = betaln(a + k, b + n - k) - betaln(a, b)
    if greater_only:
        # Posterior and prior mass above null_p; the posterior's can underflow to 0
        # when the data lean the other way, which rightly makes the factor 0.
        with np.errstate(divide="ignore"):
            log_mixture = log_mixture + np.log(betaincc(a + k, b + n - k, null_p))
        log_mixture -= np.log(betaincc(a, b, null_p))
    return np.minimum(1.0, np.exp(log_null - log_mixture))
