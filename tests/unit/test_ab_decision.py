"""The A/B decision as stories: a planted outcome, the evaluations beat would make, and
what the decision says (who wins, whether the test ends, and why)."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from shared.ab import ArmCounts, Decision, DecisionSettings, PairedCounts, SampleSums, decide
from shared.contracts import RULE_HIGHER_ACCURACY

SHADOW = DecisionSettings(mode="shadow")
TUTORIAL = DecisionSettings(rule=RULE_HIGHER_ACCURACY)


def latencies(n: int, mean: float = 0.005, sd: float = 0.002) -> SampleSums:
    """The sums SQL would give for n latencies of this mean and standard deviation."""
    return SampleSums(n, n * mean, (n - 1) * sd**2 + n * mean**2)


def arm(
    requests: int, labelled: int, correct: int, errors: int = 0, eligible: int | None = None
) -> ArmCounts:
    return ArmCounts(requests, errors, labelled, correct, latencies(requests - errors), eligible)


def evaluations(
    rng: np.random.Generator,
    accuracy_a: float,
    accuracy_b: float,
    *,
    looks: int = 30,
    per_look: int = 100,
) -> list[tuple[ArmCounts, ArmCounts]]:
    """The counts beat sees at each look of a split test where every answer is labelled."""
    correct = [rng.binomial(per_look, p, size=looks).cumsum() for p in (accuracy_a, accuracy_b)]
    return [
        (
            arm(per_look * i, per_look * i, int(correct[0][i - 1])),
            arm(per_look * i, per_look * i, int(correct[1][i - 1])),
        )
        for i in range(1, looks + 1)
    ]


def first_stop(counts: list[tuple[ArmCounts, ArmCounts]]) -> tuple[int, Decision]:
    """The look at which beat would end the test, and its decision."""
    for look, (a, b) in enumerate(counts, start=1):
        decision = decide(a, b, final=look == len(counts))
        if decision.stop:
            return look, decision
    raise AssertionError("the final evaluation must always stop the test")


def test_a_clearly_better_challenger_is_promoted_early() -> None:
    look, decision = first_stop(evaluations(np.random.default_rng(1), 0.80, 0.90))
    assert look < 30 and decision.conclusive
    assert (decision.winner, decision.promote) == ("B", True)
    assert decision.reason.startswith("B more accurate: +")
    assert decision.evidence["outcome"] == "conclusive"
    assert re.match(
        r"Model #1 accuracy: 0\.\d{4}, Model #2 accuracy: 0\.\d{4} -- B more accurate: ",
        decision.text(),
    )


def test_a_clearly_worse_challenger_ends_the_test_early_and_the_control_stays() -> None:
    look, decision = first_stop(evaluations(np.random.default_rng(2), 0.90, 0.80))
    assert look < 30 and decision.conclusive
    assert (decision.winner, decision.promote) == ("A", False)
    assert "control kept" in decision.reason


def test_an_a_a_test_evaluated_at_every_look_does_not_promote() -> None:
    rng = np.random.default_rng(3)
    promoted = 0
    for _ in range(40):
        _, decision = first_stop(evaluations(rng, 0.84, 0.84, looks=15))
        promoted += decision.promote
    assert promoted <= 2  # ~1% expected: the sequential test's rate over 15 looks


def test_early_looks_keep_running_and_the_final_one_decides() -> None:
    a, b = arm(1000, 1000, 840), arm(1000, 1000, 845)
    early = decide(a, b, final=False)
    assert not early.stop and early.winner is None
    assert early.reason.startswith("not conclusive yet") and "keep running" in early.reason
    final = decide(a, b, final=True)
    assert final.stop and not final.conclusive and final.winner is None
    assert final.reason.startswith("no significant difference") and "control stays" in final.reason


def test_a_stop_at_any_moment_decides_as_the_evidence_allows() -> None:
    # What beat would conclude early, a stop decides the same way at that moment.
    a, b = arm(1000, 1000, 800), arm(1000, 1000, 880)
    early, stopped = decide(a, b, final=False), decide(a, b, final=True)
    assert early.stop and (early.winner, stopped.winner) == ("B", "B")


def test_a_challenger_that_fails_often_is_never_promoted() -> None:
    # 60% of B's requests fail; on the rest B is far more accurate.
    a = arm(1000, 1000, 800, errors=5)
    b = arm(1000, 400, 380, errors=600, eligible=400)
    decision = decide(a, b, final=False)
    assert decision.stop and decision.conclusive and not decision.promote
    assert decision.winner == "A"
    assert decision.reason.startswith("guardrail error rate breached: B 60.0% (600 of 1000")
    assert decision.evidence["guardrails"]["error_rate"]["breached"]


def test_a_few_errors_on_both_arms_do_not_breach() -> None:
    decision = decide(arm(1000, 1000, 840, errors=10), arm(1000, 1000, 845, errors=14), final=False)
    assert not decision.evidence["guardrails"]["error_rate"]["breached"]
    assert not decision.stop


def test_a_much_slower_challenger_breaches_the_latency_guardrail() -> None:
    a = ArmCounts(1000, 0, 1000, 840, latencies(1000, mean=0.010))
    b = ArmCounts(1000, 0, 1000, 900, latencies(1000, mean=0.015))
    decision = decide(a, b, final=False)
    assert decision.stop and decision.winner == "A" and not decision.promote
    assert decision.reason.startswith(
        "guardrail worker latency breached: B mean 15.0 ms against A 10.0 ms (+50%, margin 20% "
        "and 1 ms)"
    )


def test_a_challenger_slower_by_less_than_the_slack_does_not_breach() -> None:
    """Three times slower, but by 0.2 ms: nothing a caller would notice."""
    a = ArmCounts(1000, 0, 1000, 840, latencies(1000, mean=0.0001, sd=0.00002))
    b = ArmCounts(1000, 0, 1000, 900, latencies(1000, mean=0.0003, sd=0.00006))
    assert not decide(a, b, final=False).evidence["guardrails"]["latency"]["breached"]
    strict = DecisionSettings(latency_slack_ms=0)
    assert decide(a, b, final=False, settings=strict).evidence["guardrails"]["latency"]["breached"]


def test_slower_within_the_margin_or_on_few_requests_does_not_breach() -> None:
    a = ArmCounts(5000, 0, 5000, 4200, latencies(5000, mean=0.010))
    within = ArmCounts(5000, 0, 5000, 4210, latencies(5000, mean=0.011))
    assert not decide(a, within, final=False).evidence["guardrails"]["latency"]["breached"]
    few_a = ArmCounts(50, 0, 50, 40, latencies(50, mean=0.010))
    few_b = ArmCounts(50, 0, 50, 40, latencies(50, mean=0.030))
    latency = decide(few_a, few_b, final=False).evidence["guardrails"]["latency"]
    assert not latency["breached"] and latency["reason"].endswith("not tested below 100 per arm")


def test_feedback_missing_more_on_one_arm_blocks_promotion() -> None:
    # B is clearly better on its labelled requests, but only half of them got feedback.
    a, b = arm(2000, 1800, 1440), arm(2000, 1000, 900)
    early = decide(a, b, final=False)
    assert not early.stop and "feedback missing more on one arm" in early.reason
    final = decide(a, b, final=True)
    assert final.stop and final.winner is None and not final.promote
    assert "coverage A 90%, B 50%" in final.reason
    assert not final.evidence["checks"]["uneven_feedback"]["passed"]


def test_low_label_coverage_on_both_arms_makes_the_decision_wait() -> None:
    a, b = arm(4000, 1000, 800), arm(4000, 1000, 900)
    decision = decide(a, b, final=False)
    assert not decision.stop and "label coverage too low (arm A 25%, arm B 25%" in decision.reason


def test_a_sample_ratio_mismatch_blocks_promotion() -> None:
    a, b = arm(1200, 1200, 960), arm(800, 800, 720)
    decision = decide(a, b, final=True)
    assert decision.winner is None and "sample ratio mismatch (p=" in decision.reason
    assert decision.evidence["checks"]["sample_ratio"]["p_value"] < 0.001


def shadow_records(
    rng: np.random.Generator, n: int, accuracy_a: float, accuracy_b: float, discordant: float
) -> PairedCounts:
    """n labelled records both models scored, with the given accuracies and share of
    records on which exactly one of them is right."""
    only_b = (discordant + accuracy_b - accuracy_a) / 2
    only_a = discordant - only_b
    both = accuracy_a - only_a
    cells = rng.multinomial(n, [both, only_a, only_b, 1 - both - only_a - only_b])
    both_right, a_alone, b_alone, both_wrong = map(int, cells)
    # Binary labels: the models disagree exactly where one of them is right.
    agreed = n - a_alone - b_alone
    return PairedCounts(both_right, a_alone, b_alone, both_wrong, compared=n, agreed=agreed)


def test_a_shadow_challenger_with_a_planted_lead_is_promoted() -> None:
    pairs = shadow_records(np.random.default_rng(4), 3000, 0.84, 0.87, discordant=0.05)
    a, b = arm(3000, 3000, 0), arm(3000, 3000, 0)  # in shadow, accuracy comes from the pairs
    decision = decide(a, b, final=False, settings=SHADOW, pairs=pairs)
    assert decision.stop and (decision.winner, decision.promote) == ("B", True)
    assert decision.evidence["effect"]["fixed_horizon_p_value"] < 0.001  # McNemar exact
    assert decision.evidence["paired"]["agreement_rate"] == pytest.approx(0.95, abs=0.01)
    assert decision.evidence["checks"]["sample_ratio"] is None


def test_a_shadow_challenger_that_fails_alone_breaches_the_error_guardrail() -> None:
    pairs = PairedCounts(800, 10, 40, 150, only_a_errors=2, only_b_errors=30)
    decision = decide(
        arm(1000, 1000, 0), arm(1000, 1000, 0), final=False, settings=SHADOW, pairs=pairs
    )
    assert decision.stop and decision.winner == "A" and not decision.promote
    assert "B alone failed on 30 records, A alone on 2" in decision.reason


def test_a_shadow_test_needs_its_pairs() -> None:
    with pytest.raises(ValueError, match="pass pairs"):
        decide(arm(10, 10, 5), arm(10, 10, 5), final=True, settings=SHADOW)


def test_the_tutorial_rule_respects_the_minimum_sample() -> None:
    a, b = arm(20, 20, 15), arm(20, 20, 16)
    decision = decide(a, b, final=True, settings=TUTORIAL)
    assert decision.winner is None and not decision.promote
    assert "too few labelled requests (arm A 20, arm B 20; need 200)" in decision.reason


def test_the_tutorial_rule_decides_only_at_the_end_by_higher_accuracy() -> None:
    a, b = arm(1000, 1000, 825), arm(1000, 1000, 877)
    assert not decide(a, b, final=False, settings=TUTORIAL).stop
    decision = decide(a, b, final=True, settings=TUTORIAL)
    assert (decision.winner, decision.promote) == ("B", True)
    assert decision.text() == (
        "Model #1 accuracy: 0.8250, Model #2 accuracy: 0.8770 -- "
        "higher accuracy (tutorial rule, not tested for chance)"
    )
    tie = decide(a, arm(1000, 1000, 825), final=True, settings=TUTORIAL)
    assert tie.winner is None and tie.reason == "equal accuracy; control stays"


def test_the_tutorial_rule_respects_the_sample_ratio_check() -> None:
    decision = decide(arm(1200, 1200, 960), arm(800, 800, 720), final=True, settings=TUTORIAL)
    assert decision.winner is None and "sample ratio mismatch" in decision.reason


@pytest.mark.parametrize(
    ("a", "b", "settings", "pairs"),
    [
        (ArmCounts(0, 0, 0, 0), ArmCounts(0, 0, 0, 0), DecisionSettings(), None),
        (arm(100, 50, 40), ArmCounts(0, 0, 0, 0), TUTORIAL, None),
        (arm(10, 10, 10), arm(10, 10, 10), DecisionSettings(min_labelled=0), None),
        (arm(10, 0, 0), arm(10, 0, 0), SHADOW, PairedCounts(0, 0, 0, 0)),
        (arm(2000, 1800, 1440), arm(2000, 1000, 900), DecisionSettings(), None),
    ],
)
def test_evidence_is_plain_json_and_says_why(
    a: ArmCounts, b: ArmCounts, settings: DecisionSettings, pairs: PairedCounts | None
) -> None:
    decision = decide(a, b, final=True, settings=settings, pairs=pairs)
    stored = json.loads(json.dumps(decision.summary(), allow_nan=False))
    assert stored["evidence"]["settings"]["rule"] == settings.rule
    assert {"arms", "effect", "checks", "guardrails", "outcome"} <= stored["evidence"].keys()
    assert decision.reason and "\n" not in decision.reason


def test_an_arm_without_labels_reads_as_such() -> None:
    decision = decide(arm(100, 50, 40), ArmCounts(0, 0, 0, 0), final=True)
    assert decision.winner is None and "no labelled requests yet" in decision.reason
    assert "Model #2 accuracy: n/a" in decision.text()


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"rule": "coin flip"}, "unknown decision rule"),
        ({"mode": "canary"}, "unknown A/B mode"),
        ({"split": 1.0}, "split must be between 0 and 1"),
        ({"tau": 0.0}, "tau must be positive"),
        ({"min_coverage": 1.5}, "min_coverage must be between 0 and 1"),
    ],
)
def test_unsafe_settings_are_refused(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        DecisionSettings(**settings)  # type: ignore[arg-type]


REGRESSION = DecisionSettings(metric="mean_absolute_error", min_labelled=100)


def absolute_errors(rng: np.random.Generator, scale: float, n: int) -> SampleSums:
    """The sums SQL would give for n absolute errors of a model with this error scale."""
    errors = np.abs(rng.normal(0, scale, n))
    return SampleSums(n, float(errors.sum()), float((errors**2).sum()))


def regressor_arm(errors: SampleSums) -> ArmCounts:
    return ArmCounts(errors.n, 0, errors.n, 0, latencies(errors.n), absolute_error=errors)


def test_a_regressor_with_smaller_errors_is_promoted_on_mean_absolute_error() -> None:
    rng = np.random.default_rng(5)
    a, b = (regressor_arm(absolute_errors(rng, s, 400)) for s in (60.0, 40.0))
    decision = decide(a, b, final=False, settings=REGRESSION)
    assert decision.stop and (decision.winner, decision.promote) == ("B", True)
    assert decision.reason.startswith("B smaller errors: mean absolute error -")
    assert decision.metric_b is not None and decision.metric_a is not None
    assert decision.metric_b < decision.metric_a
    assert decision.text().startswith("Model #1 mean absolute error: ")
    assert decision.evidence["arms"]["A"]["mean_absolute_error"] == pytest.approx(decision.metric_a)
    assert "accuracy" not in decision.evidence["arms"]["A"]


def test_regressors_of_equal_error_keep_the_control() -> None:
    rng = np.random.default_rng(6)
    a, b = (regressor_arm(absolute_errors(rng, 50.0, 400)) for _ in "ab")
    decision = decide(a, b, final=True, settings=REGRESSION)
    assert decision.winner is None and "no significant difference" in decision.reason


def test_a_shadow_test_of_regressors_uses_the_paired_differences() -> None:
    rng = np.random.default_rng(7)
    noise = rng.normal(0, 30, 300)
    error_a, error_b = np.abs(noise + rng.normal(0, 20, 300)), np.abs(noise)
    sums = [SampleSums(300, float(e.sum()), float((e**2).sum())) for e in (error_a, error_b)]
    difference = error_b - error_a
    pairs = PairedCounts(
        0, 0, 0, 0,
        compared=300,
        absolute_error_a=sums[0],
        absolute_error_b=sums[1],
        error_difference=SampleSums(300, float(difference.sum()), float((difference**2).sum())),
    )  # fmt: skip
    settings = DecisionSettings(mode="shadow", metric="mean_absolute_error", min_labelled=100)
    a, b = arm(300, 300, 0), arm(300, 300, 0)  # in shadow, the errors come from the pairs
    decision = decide(a, b, final=False, settings=settings, pairs=pairs)
    assert decision.stop and decision.promote
    assert decision.evidence["effect"]["metric"] == "paired mean absolute error B - A"


def test_a_replay_names_the_better_model_but_promotes_nothing() -> None:
    pairs = shadow_records(np.random.default_rng(8), 3000, 0.84, 0.88, discordant=0.06)
    replay = DecisionSettings(mode="replay")
    decision = decide(
        arm(3000, 3000, 0), arm(3000, 3000, 0), final=True, settings=replay, pairs=pairs
    )
    assert decision.winner == "B" and not decision.promote
    assert decision.reason.endswith("; a replay promotes nothing")
