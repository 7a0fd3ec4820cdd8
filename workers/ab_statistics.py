"""A/B test statistics and the decision: pure functions, no Celery, no database.

Per arm: requests, labelled requests (those with feedback), correct, accuracy over the
labelled only, a 95% Wilson interval, the error rate. Between arms: a pooled
two-proportion z-test of accuracy, and a chi-square sample-ratio-mismatch check of the
traffic split.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from shared.contracts import DECISION_RULES, RULE_HIGHER_ACCURACY, RULE_SIGNIFICANCE

Z_95 = 1.959963984540054
# A split this unlikely under the configured ratio means assignment is broken, whatever
# the accuracies say (the usual threshold for sample-ratio mismatch).
SRM_P_THRESHOLD = 0.001

RULES = DECISION_RULES


@dataclass(frozen=True)
class ArmCounts:
    requests: int
    errors: int
    labelled: int
    correct: int


@dataclass(frozen=True)
class ArmStats:
    requests: int
    errors: int
    labelled: int
    correct: int
    accuracy: float | None
    ci_low: float | None
    ci_high: float | None
    error_rate: float | None


@dataclass(frozen=True)
class Decision:
    rule: str
    winner: str | None  # "A", "B", or None: the control stays in production
    promote: bool  # whether B replaces A in production
    reason: str
    arms: dict[str, ArmStats]
    z: float | None
    p_value: float | None
    srm_p_value: float | None
    alpha: float
    min_labelled: int
    split: float

    def summary(self) -> dict[str, Any]:
        return {**asdict(self), "text": self.text()}

    def text(self) -> str:
        """The tutorial's line, and why."""
        a, b = self.arms["A"], self.arms["B"]
        return (
            f"Model #1 accuracy: {_show(a.accuracy)}, Model #2 accuracy: {_show(b.accuracy)}"
            f" -- {self.reason}"
        )


def _show(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def wilson_interval(correct: int, labelled: int, z: float = Z_95) -> tuple[float, float] | None:
    """The Wilson score interval of a proportion (sound at 0, 1 and small counts)."""
    if labelled == 0:
        return None
    p = correct / labelled
    denominator = 1 + z * z / labelled
    centre = (p + z * z / (2 * labelled)) / denominator
    half = z * math.sqrt(p * (1 - p) / labelled + z * z / (4 * labelled * labelled)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def arm_stats(counts: ArmCounts) -> ArmStats:
    interval = wilson_interval(counts.correct, counts.labelled)
    return ArmStats(
        requests=counts.requests,
        errors=counts.errors,
        labelled=counts.labelled,
        correct=counts.correct,
        accuracy=counts.correct / counts.labelled if counts.labelled else None,
        ci_low=interval[0] if interval else None,
        ci_high=interval[1] if interval else None,
        error_rate=counts.errors / counts.requests if counts.requests else None,
    )


def two_proportion_test(c1: int, n1: int, c2: int, n2: int) -> tuple[float, float] | None:
    """Pooled two-proportion z-test: (z, two-sided p). None when it is undefined."""
    if n1 == 0 or n2 == 0:
        return None
    pooled = (c1 + c2) / (n1 + n2)
    variance = pooled * (1 - pooled) * (1 / n1 + 1 / n2)
    if variance == 0:
        return (0.0, 1.0)  # both arms all right or all wrong: no difference to see
    z = (c2 / n2 - c1 / n1) / math.sqrt(variance)
    return z, math.erfc(abs(z) / math.sqrt(2))


def sample_ratio_p_value(requests_a: int, requests_b: int, split: float) -> float | None:
    """Chi-square goodness of fit (1 degree of freedom) of the arms' traffic to the split."""
    total = requests_a + requests_b
    if total == 0:
        return None
    expected_a, expected_b = total * (1 - split), total * split
    chi2 = (requests_a - expected_a) ** 2 / expected_a + (requests_b - expected_b) ** 2 / expected_b
    return math.erfc(math.sqrt(chi2 / 2))


def decide(
    a: ArmCounts,
    b: ArmCounts,
    *,
    split: float,
    min_labelled: int,
    alpha: float = 0.05,
    rule: str = RULE_SIGNIFICANCE,
) -> Decision:
    """Whether B (the challenger) replaces A (the control) in production, and why."""
    if rule not in RULES:
        raise ValueError(f"unknown decision rule {rule!r}; use one of {', '.join(RULES)}")
    arms = {"A": arm_stats(a), "B": arm_stats(b)}
    test = two_proportion_test(a.correct, a.labelled, b.correct, b.labelled)
    z, p = test if test else (None, None)
    srm = sample_ratio_p_value(a.requests, b.requests, split)

    def decision(winner: str | None, reason: str) -> Decision:
        return Decision(
            rule, winner, winner == "B", reason, arms, z, p, srm, alpha, min_labelled, split
        )

    empty = [name for name, counts in (("A", a), ("B", b)) if counts.labelled == 0]
    if empty:
        return decision(None, f"no labelled requests on arm {' and '.join(empty)}; control stays")
    acc_a, acc_b = arms["A"].accuracy, arms["B"].accuracy
    assert acc_a is not None and acc_b is not None
    if rule == RULE_HIGHER_ACCURACY:
        if acc_b > acc_a:
            return decision("B", "higher accuracy (tutorial rule, not tested for chance)")
        if acc_a > acc_b:
            return decision("A", "higher accuracy (tutorial rule, not tested for chance)")
        return decision(None, "equal accuracy; control stays")
    short = [n for n, c in (("A", a), ("B", b)) if c.labelled < min_labelled]
    if short:
        return decision(
            None,
            f"too few labelled requests on arm {' and '.join(short)} "
            f"(need {min_labelled} per arm); control stays",
        )
    if srm is not None and srm < SRM_P_THRESHOLD:
        return decision(
            None,
            f"sample ratio mismatch (p={srm:.2g}: {a.requests} vs {b.requests} requests "
            f"for a {1 - split:.2f}/{split:.2f} split); control stays",
        )
    assert p is not None
    if p >= alpha:
        return decision(None, f"no significant difference (p={p:.3g} >= {alpha}); control stays")
    winner = "B" if acc_b > acc_a else "A"
    return decision(winner, f"significant difference (p={p:.3g} < {alpha})")
