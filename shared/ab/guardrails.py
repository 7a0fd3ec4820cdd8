"""Guardrails: a challenger significantly worse than the control on errors or on worker
latency is never promoted, and the test ends early with the control kept.

Checked at every evaluation, so both tests are always valid: the error-rate test is the
exact beta-binomial mixture, the latency test the normal mixture on means.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.ab.sequential import beta_binomial_p_value
from shared.ab.statistics import ArmCounts, PairedCounts, mean_difference_effect


@dataclass(frozen=True)
class GuardrailResult:
    name: str
    breached: bool
    p_value: float | None  # always-valid, one-sided: B worse than A
    figures: dict[str, Any]
    reason: str


def error_rate_guardrail(
    a: ArmCounts, b: ArmCounts, *, split: float, alpha: float, concentration: float
) -> GuardrailResult:
    """Split test: is B's error rate higher than A's?

    If both arms fail equally often, each failed request is B's with probability
    ``split`` (B's share of traffic), independently of the others and however the
    error rate drifts over time; so B's share of the errors is an exact one-sided
    binomial test, with no normal approximation at the low counts errors come in.
    """
    p_value = _one_sided_p(b.errors, a.errors + b.errors, split, concentration)
    figures = {
        "errors": [a.errors, b.errors],
        "requests": [a.requests, b.requests],
        "null_share_of_errors_on_b": split,
    }
    rate = (
        f"B {_percent(b.errors, b.requests)} ({b.errors} of {b.requests} requests) against "
        f"A {_percent(a.errors, a.requests)} ({a.errors} of {a.requests})"
    )
    return _result("error_rate", "error rate", p_value, alpha, figures, rate)


def paired_error_guardrail(
    pairs: PairedCounts, *, alpha: float, concentration: float
) -> GuardrailResult:
    """Shadow test: of the records exactly one model failed on, is B the one more often
    than half the time? Exact for the same reason McNemar's test is."""
    only_a, only_b = pairs.only_a_errors, pairs.only_b_errors
    p_value = _one_sided_p(only_b, only_a + only_b, 0.5, concentration)
    figures = {"only_a_errors": only_a, "only_b_errors": only_b}
    rate = f"B alone failed on {only_b} records, A alone on {only_a}"
    return _result("error_rate", "error rate", p_value, alpha, figures, rate)


def latency_guardrail(
    a: ArmCounts,
    b: ArmCounts,
    *,
    margin: float,
    tau_relative: float,
    alpha: float,
    min_samples: int,
    slack_seconds: float = 0.0,
) -> GuardrailResult:
    """Is B's mean worker latency more than ``margin`` (relative) and ``slack_seconds``
    (absolute) above A's?

    The test is of mean(B) - (1 + margin) mean(A) - slack > 0, so B being slightly
    slower (within the margin, or by less than the slack: 0.1 ms against 0.3 ms is three
    times slower and still nothing a caller notices) never ends a test. It waits for
    ``min_samples`` latencies per arm because latencies are skewed and the normal
    approximation needs many.
    """
    effect = mean_difference_effect(
        a.latency,
        b.latency,
        metric=f"mean latency B - {1 + margin:g} x A",
        tau_relative=tau_relative,
        alpha=alpha,
        a_factor=1 + margin,
        slack=slack_seconds,
    )
    mean_a, mean_b = a.latency.mean, b.latency.mean
    figures = {
        "n": [a.latency.n, b.latency.n],
        "mean_seconds": [mean_a, mean_b],
        "margin": margin,
        "slack_seconds": slack_seconds,
        "min_samples": min_samples,
        "estimate_seconds": effect.estimate,
        "interval_seconds": [effect.low, effect.high],
    }
    if mean_a is None or mean_b is None:
        return GuardrailResult("latency", False, None, figures, "worker latency: none yet")
    change = f"{mean_b / mean_a - 1:+.0%}" if mean_a else "n/a"
    means = (
        f"B mean {mean_b * 1000:.1f} ms against A {mean_a * 1000:.1f} ms "
        f"({change}, margin {margin:.0%} and {slack_seconds * 1000:g} ms)"
    )
    if min(a.latency.n, b.latency.n) < min_samples:
        waiting = f"worker latency: {means}, not tested below {min_samples} per arm"
        return GuardrailResult("latency", False, None, figures, waiting)
    # The mixture test is two-sided; only B's side of the margin is a breach.
    worse = effect.estimate is not None and effect.estimate > 0
    return _result(
        "latency", "worker latency", effect.p_value if worse else 1.0, alpha, figures, means
    )


def _one_sided_p(worse: int, total: int, null_p: float, concentration: float) -> float:
    return float(
        beta_binomial_p_value(
            worse, total, null_p=null_p, concentration=concentration, greater_only=True
        )
    )


def _result(
    name: str,
    label: str,
    p_value: float | None,
    alpha: float,
    figures: dict[str, Any],
    description: str,
) -> GuardrailResult:
    breached = p_value is not None and p_value <= alpha
    shown = "n/a" if p_value is None else f"{p_value:.3g}"
    verdict = f"p={shown} <= {alpha}" if breached else f"p={shown}"
    prefix = f"guardrail {label} breached" if breached else label
    return GuardrailResult(name, breached, p_value, figures, f"{prefix}: {description}, {verdict}")


def _percent(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "n/a"
