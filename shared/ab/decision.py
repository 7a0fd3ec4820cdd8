"""The A/B decision: whether B (the challenger) replaces A (the control), when, and why.

Called at every evaluation of a running test (beat) and once more at its end (end time
reached, or `mlq ab stop`). An early evaluation either ends the test, because the
evidence is conclusive or a guardrail is breached, or says "keep running"; the final
one always decides. With the sequential rule both are equally valid at any moment.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, NamedTuple

from shared.ab.guardrails import (
    error_rate_guardrail,
    latency_guardrail,
    paired_error_guardrail,
)
from shared.ab.statistics import (
    ArmCounts,
    Effect,
    PairedCounts,
    agreement_rate,
    arm_summary,
    mean_absolute_error_effect,
    paired_accuracy_effect,
    paired_mean_difference_effect,
    sample_ratio_p_value,
    split_accuracy_effect,
    uneven_feedback_p_value,
)
from shared.contracts import (
    DECISION_RULES,
    MODE_REPLAY,
    MODE_SHADOW,
    MODE_SPLIT,
    RULE_HIGHER_ACCURACY,
    RULE_SEQUENTIAL,
)

RULES = DECISION_RULES
MODES = (MODE_SPLIT, MODE_SHADOW, MODE_REPLAY)
# Shadow and replay tests have both models answer the same records: a paired test.
PAIRED_MODES = (MODE_SHADOW, MODE_REPLAY)
# What is compared: a classifier's accuracy (higher is better), a regressor's mean
# absolute error against the true values given as feedback (lower is better).
METRIC_ACCURACY = "accuracy"
METRIC_MAE = "mean_absolute_error"
METRICS = (METRIC_ACCURACY, METRIC_MAE)

# The normal mixture's tau, in accuracy (0.03 = 3 points), matched to the differences
# worth detecting between model versions as Johari et al. (2017, section 4) advise.
# `python -m benchmarks.ab_simulation --tune` (base accuracy 0.84, a look every 100
# labels per arm, 2,000 tests per cell): of taus 0.01-0.1, 0.03 decided within one look
# of the fastest for true differences of 2, 4 and 8 points; smaller taus win only for
# 1-point differences (power 0.52 against 0.48 by 20,000 labels per arm).
DEFAULT_TAU = 0.03
# The Beta mixture's a + b for the exact binomial tests (shadow's discordant pairs, the
# error guardrail): 10 gives a prior standard deviation of 0.15 around 1/2, the size of
# B's share of discordant pairs for 1-4 point differences at the income models'
# agreement of 0.95. By the same sweep (concentrations 2-100, a look every 50 records):
# within one look of the fastest for 1 and 2 point differences; for 4 points,
# concentration 2 needs 250 records against 350.
DEFAULT_CONCENTRATION = 10.0
# The mixture's tau for mean absolute errors, relative to A's: differences of about 5%
# of the control's error (``mean_absolute_error_effect``'s default).
DEFAULT_MAE_TAU = 0.05


@dataclass(frozen=True)
class DecisionSettings:
    """A test's rule and its settings, stored with its evidence."""

    rule: str = RULE_SEQUENTIAL
    mode: str = MODE_SPLIT
    metric: str = METRIC_ACCURACY
    split: float = 0.5  # B's share of traffic (split mode)
    alpha: float = 0.05
    min_labelled: int = 200  # per arm (split) or paired records (shadow, replay)
    min_coverage: float = 0.5  # labelled share of each arm's eligible answered requests
    tau: float = DEFAULT_TAU
    concentration: float = DEFAULT_CONCENTRATION
    mae_tau: float = DEFAULT_MAE_TAU  # relative to A's mean absolute error
    guardrail_alpha: float = 0.05
    latency_margin: float = 0.2  # B may be this much slower (relative) before it counts
    latency_slack_ms: float = (
        1.0  # ... and this much (absolute): sub-millisecond noise is not a breach
    )
    latency_tau: float = 0.2  # relative to A's mean latency
    min_latency_samples: int = 100
    sample_ratio_threshold: float = 0.001
    uneven_feedback_threshold: float = 0.001

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"unknown decision rule {self.rule!r}; use one of {', '.join(RULES)}")
        if self.mode not in MODES:
            raise ValueError(f"unknown A/B mode {self.mode!r}; use one of {', '.join(MODES)}")
        if self.metric not in METRICS:
            raise ValueError(f"unknown metric {self.metric!r}; use one of {', '.join(METRICS)}")
        for name in ("split", "alpha", "guardrail_alpha"):
            if not 0 < getattr(self, name) < 1:
                raise ValueError(f"{name} must be between 0 and 1, not {getattr(self, name)}")
        if not 0 <= self.min_coverage <= 1:
            raise ValueError(f"min_coverage must be between 0 and 1, not {self.min_coverage}")
        for name in ("tau", "concentration", "latency_tau", "mae_tau"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, not {getattr(self, name)}")


@dataclass(frozen=True)
class Decision:
    winner: str | None  # "A", "B", or None: the control stays in production
    promote: bool  # B replaces A in production
    stop: bool  # end the test now; False: keep running
    conclusive: bool  # the evidence settled it (a significant effect or a guardrail breach)
    reason: str
    metric: str  # what metric_a and metric_b are: accuracy, or mean absolute error
    metric_a: float | None
    metric_b: float | None
    evidence: dict[str, Any] = field(default_factory=dict)  # JSON-ready

    def text(self) -> str:
        """The tutorial's line, and why."""
        name = "accuracy" if self.metric == METRIC_ACCURACY else "mean absolute error"
        return (
            f"Model #1 {name}: {_show(self.metric_a)}, "
            f"Model #2 {name}: {_show(self.metric_b)} -- {self.reason}"
        )

    def summary(self) -> dict[str, Any]:
        return {**asdict(self), "text": self.text()}


def decide(
    a: ArmCounts,
    b: ArmCounts,
    *,
    final: bool,
    settings: DecisionSettings = DecisionSettings(),  # frozen, so safely shared
    pairs: PairedCounts | None = None,
) -> Decision:
    """Decide a test from its counts.

    ``final``: the end time has come or someone stopped the test, so decide now.
    ``pairs``: a shadow or replay test's paired records (required in those modes).
    """
    paired = settings.mode in PAIRED_MODES
    if paired and pairs is None:
        raise ValueError("a shadow test is decided on its paired records: pass pairs")
    if paired:
        assert pairs is not None
        effect, metric_a, metric_b, labelled_pairs = _paired_comparison(pairs, settings)
        labelled = {"paired records": labelled_pairs}
        error_guardrail = paired_error_guardrail(
            pairs, alpha=settings.guardrail_alpha, concentration=settings.concentration
        )
    else:
        effect, metric_a, metric_b = _split_comparison(a, b, settings)
        labelled = {"arm A": a.labelled, "arm B": b.labelled}
        error_guardrail = error_rate_guardrail(
            a,
            b,
            split=settings.split,
            alpha=settings.guardrail_alpha,
            concentration=settings.concentration,
        )
    guardrails = [
        error_guardrail,
        latency_guardrail(
            a,
            b,
            margin=settings.latency_margin,
            tau_relative=settings.latency_tau,
            alpha=settings.guardrail_alpha,
            min_samples=settings.min_latency_samples,
            slack_seconds=settings.latency_slack_ms / 1000,
        ),
    ]
    checks, blocks = _checks(a, b, labelled, settings, paired=paired)
    significant = effect.p_value is not None and effect.p_value <= settings.alpha
    evidence: dict[str, Any] = {
        "rule": settings.rule,
        "mode": settings.mode,
        "final": final,
        "settings": asdict(settings),
        "arms": {
            "A": arm_summary(a, regressor=settings.metric == METRIC_MAE),
            "B": arm_summary(b, regressor=settings.metric == METRIC_MAE),
        },
        "metric": settings.metric,
        "compared": [metric_a, metric_b],
        "effect": {**asdict(effect), "significant": significant},
        "paired": _paired_evidence(pairs) if paired else None,
        "checks": checks,
        "guardrails": {g.name: asdict(g) for g in guardrails},
    }

    breached = [g for g in guardrails if g.breached]
    if breached:
        verdict = _Verdict("guardrail_breach", "A", f"{breached[0].reason}; control kept")
    else:
        if metric_a is None or metric_b is None:
            blocks.insert(0, "no labelled requests yet")
        if settings.rule == RULE_HIGHER_ACCURACY:
            verdict = _tutorial_rule(metric_a, metric_b, blocks, settings.metric, final=final)
        else:
            verdict = _sequential(effect, significant, blocks, settings, final=final)
    evidence["outcome"] = verdict.outcome
    promote, reason = verdict.winner == "B", verdict.reason
    if promote and settings.mode == MODE_REPLAY:
        # A replay only reports: B reaches production through a live test.
        promote = False
        reason = f"{reason.removesuffix('; B promoted')}; a replay promotes nothing"
    return Decision(
        winner=verdict.winner,
        promote=promote,
        stop=verdict.stop,
        conclusive=verdict.outcome in ("conclusive", "guardrail_breach"),
        reason=reason,
        metric=settings.metric,
        metric_a=metric_a,
        metric_b=metric_b,
        evidence=evidence,
    )


def _split_comparison(
    a: ArmCounts, b: ArmCounts, settings: DecisionSettings
) -> tuple[Effect, float | None, float | None]:
    """B against A between independent arms: the effect and each arm's metric."""
    if settings.metric == METRIC_MAE:
        effect = mean_absolute_error_effect(
            a.absolute_error, b.absolute_error, tau_relative=settings.mae_tau, alpha=settings.alpha
        )
        return effect, a.absolute_error.mean, b.absolute_error.mean
    effect = split_accuracy_effect(a, b, tau=settings.tau, alpha=settings.alpha)
    accuracy_a = a.correct / a.labelled if a.labelled else None
    accuracy_b = b.correct / b.labelled if b.labelled else None
    return effect, accuracy_a, accuracy_b


def _paired_comparison(
    pairs: PairedCounts, settings: DecisionSettings
) -> tuple[Effect, float | None, float | None, int]:
    """B against A on the same records: the effect, each model's metric over the labelled
    pairs, and how many labelled pairs there are."""
    if settings.metric == METRIC_MAE:
        a, b = pairs.absolute_error_a, pairs.absolute_error_b
        effect = paired_mean_difference_effect(
            pairs.error_difference,
            metric="paired mean absolute error B - A",
            scale=a.mean,
            tau_relative=settings.mae_tau,
            alpha=settings.alpha,
        )
        return effect, a.mean, b.mean, pairs.error_difference.n
    effect = paired_accuracy_effect(
        pairs, tau=settings.tau, concentration=settings.concentration, alpha=settings.alpha
    )
    return (effect, *_paired_accuracies(pairs), pairs.labelled)


class _Verdict(NamedTuple):
    outcome: str  # keep_running | conclusive | guardrail_breach | final
    winner: str | None
    reason: str
    stop: bool = True


def _tutorial_rule(
    metric_a: float | None,
    metric_b: float | None,
    blocks: list[str],
    metric: str,
    *,
    final: bool,
) -> _Verdict:
    """The tutorial's rule: the higher accuracy (the lower error, for a regressor) at the
    end wins, not tested for chance, but only on enough labels from a healthy split (the
    minimum, coverage and sample ratio gate it as they gate the sequential rule)."""
    if not final:
        return _Verdict("keep_running", None, "the tutorial rule decides at the end", stop=False)
    if blocks:
        return _Verdict("final", None, f"{'; '.join(blocks)}; control stays")
    assert metric_a is not None and metric_b is not None
    name = "accuracy" if metric == METRIC_ACCURACY else "mean absolute error"
    if metric_a == metric_b:
        return _Verdict("final", None, f"equal {name}; control stays")
    b_better = metric_b > metric_a if metric == METRIC_ACCURACY else metric_b < metric_a
    better = "higher accuracy" if metric == METRIC_ACCURACY else "lower mean absolute error"
    return _Verdict(
        "final", "B" if b_better else "A", f"{better} (tutorial rule, not tested for chance)"
    )


def _sequential(
    effect: Effect,
    significant: bool,
    blocks: list[str],
    settings: DecisionSettings,
    *,
    final: bool,
) -> _Verdict:
    alpha = settings.alpha
    figures = _effect_figures(effect, alpha, settings.metric)
    if significant and not blocks:
        assert effect.estimate is not None
        accuracy = settings.metric == METRIC_ACCURACY
        if (effect.estimate > 0) == accuracy:
            better = "more accurate" if accuracy else "smaller errors"
            return _Verdict("conclusive", "B", f"B {better}: {figures}; B promoted")
        worse = "less accurate" if accuracy else "larger errors"
        return _Verdict("conclusive", "A", f"B {worse}: {figures}; control kept")
    if final:
        why = "; ".join(blocks) if blocks else f"no significant difference: {figures}"
        return _Verdict("final", None, f"{why}; control stays")
    if blocks:
        return _Verdict("keep_running", None, f"{'; '.join(blocks)}; keep running", stop=False)
    return _Verdict(
        "keep_running", None, f"not conclusive yet: {figures}; keep running", stop=False
    )


def _checks(
    a: ArmCounts,
    b: ArmCounts,
    labelled: dict[str, int],
    settings: DecisionSettings,
    *,
    paired: bool,
) -> tuple[dict[str, Any], list[str]]:
    """The gates a promotion must pass, as evidence, and the reasons of those failing."""
    blocks = []
    short = [f"{name} {n}" for name, n in labelled.items() if n < settings.min_labelled]
    if short:
        blocks.append(
            f"too few labelled requests ({', '.join(short)}; need {settings.min_labelled})"
        )
    coverage = {arm: _share(c.labelled, c.labellable) for arm, c in (("A", a), ("B", b))}
    low = [
        f"arm {arm} {share:.0%}"
        for arm, share in coverage.items()
        if share is not None and share < settings.min_coverage
    ]
    if low:
        blocks.append(
            f"label coverage too low ({', '.join(low)}; need {settings.min_coverage:.0%})"
        )
    checks: dict[str, Any] = {
        "min_labelled": {
            "labelled": labelled,
            "needed": settings.min_labelled,
            "passed": not short,
        },
        "coverage": {"coverage": coverage, "needed": settings.min_coverage, "passed": not low},
    }
    if paired:
        # Both arms score the same records and share their feedback: there is no split
        # to mismatch and no way for labels to miss one arm more than the other.
        checks["uneven_feedback"] = checks["sample_ratio"] = None
        return checks, blocks
    uneven = uneven_feedback_p_value(a, b)
    uneven_blocks = uneven is not None and uneven < settings.uneven_feedback_threshold
    if uneven_blocks:
        blocks.append(
            f"feedback missing more on one arm (coverage A {_percent(coverage['A'])}, "
            f"B {_percent(coverage['B'])}, p={uneven:.2g} < {settings.uneven_feedback_threshold})"
        )
    srm = sample_ratio_p_value(a.requests, b.requests, settings.split)
    srm_blocks = srm is not None and srm < settings.sample_ratio_threshold
    if srm_blocks:
        blocks.append(
            f"sample ratio mismatch (p={srm:.2g}: {a.requests} vs {b.requests} requests "
            f"for a {1 - settings.split:.2f}/{settings.split:.2f} split)"
        )
    checks["uneven_feedback"] = {
        "p_value": uneven,
        "threshold": settings.uneven_feedback_threshold,
        "passed": not uneven_blocks,
    }
    checks["sample_ratio"] = {
        "p_value": srm,
        "threshold": settings.sample_ratio_threshold,
        "passed": not srm_blocks,
    }
    return checks, blocks


def _paired_accuracies(pairs: PairedCounts) -> tuple[float | None, float | None]:
    n = pairs.labelled
    if n == 0:
        return None, None
    return (
        (pairs.both_correct + pairs.only_a_correct) / n,
        (pairs.both_correct + pairs.only_b_correct) / n,
    )


def _paired_evidence(pairs: PairedCounts | None) -> dict[str, Any]:
    assert pairs is not None
    return {**asdict(pairs), "agreement_rate": agreement_rate(pairs)}


def _effect_figures(effect: Effect, alpha: float, metric: str) -> str:
    if effect.estimate is None or effect.p_value is None:
        return "no effect to measure yet"
    assert effect.low is not None and effect.high is not None
    sign = "<=" if effect.p_value <= alpha else ">"
    if metric == METRIC_ACCURACY:
        size = f"{effect.estimate * 100:+.1f} points"
        interval = f"{effect.low * 100:+.1f} to {effect.high * 100:+.1f}"
    else:
        size = f"mean absolute error {effect.estimate:+.4g}"
        interval = f"{effect.low:+.4g} to {effect.high:+.4g}"
    return (
        f"{size}, always-valid {1 - alpha:.0%} interval {interval}, "
        f"p={effect.p_value:.3g} {sign} {alpha}"
    )


def _share(part: int, whole: int) -> float | None:
    return part / whole if whole else None


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _show(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"
