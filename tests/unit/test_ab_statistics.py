"""A/B statistics against values worked out by hand (the arithmetic is in the comments)."""

from __future__ import annotations

import pytest

from shared.contracts import RULE_HIGHER_ACCURACY
from workers.ab_statistics import (
    ArmCounts,
    decide,
    sample_ratio_p_value,
    two_proportion_test,
    wilson_interval,
)


def test_wilson_interval_of_8_out_of_10() -> None:
    # p = .8, z^2 = 3.8415; centre = (.8 + .19208)/1.38415 = .71674,
    # half = 1.96 * sqrt(.016 + .009604)/1.38415 = .22658
    low, high = wilson_interval(8, 10)  # type: ignore[misc]
    assert low == pytest.approx(0.4902, abs=1e-4)
    assert high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_interval_stays_inside_zero_and_one() -> None:
    assert wilson_interval(0, 5)[0] == 0.0  # type: ignore[index]
    assert wilson_interval(5, 5)[1] == 1.0  # type: ignore[index]
    assert wilson_interval(0, 0) is None


def test_two_proportions_80_of_100_against_90_of_100() -> None:
    # pooled .85; se = sqrt(.85 * .15 * (1/100 + 1/100)) = .050498; z = .1/.050498
    z, p = two_proportion_test(80, 100, 90, 100)  # type: ignore[misc]
    assert z == pytest.approx(1.9803, abs=1e-4)
    assert p == pytest.approx(0.04768, abs=1e-5)


def test_two_proportions_undefined_without_labels() -> None:
    assert two_proportion_test(0, 0, 5, 10) is None
    assert two_proportion_test(10, 10, 20, 20) == (0.0, 1.0)


def test_sample_ratio_mismatch_600_against_400_on_an_even_split() -> None:
    # chi2 = 100^2/500 * 2 = 40, one degree of freedom
    assert sample_ratio_p_value(600, 400, 0.5) == pytest.approx(2.54e-10, rel=1e-2)
    assert sample_ratio_p_value(500, 500, 0.5) == pytest.approx(1.0)
    assert sample_ratio_p_value(700, 300, 0.3) == pytest.approx(1.0)


def arms(a: tuple[int, int, int], b: tuple[int, int, int]) -> tuple[ArmCounts, ArmCounts]:
    return ArmCounts(a[0], 0, a[1], a[2]), ArmCounts(b[0], 0, b[1], b[2])


def test_a_clear_winner_with_enough_labels_is_promoted() -> None:
    a, b = arms((500, 400, 280), (500, 400, 360))
    decision = decide(a, b, split=0.5, min_labelled=200)
    assert (decision.winner, decision.promote) == ("B", True)
    assert "significant" in decision.reason
    assert decision.text().startswith("Model #1 accuracy: 0.7000, Model #2 accuracy: 0.9000")


def test_a_better_control_keeps_production() -> None:
    a, b = arms((500, 400, 360), (500, 400, 280))
    decision = decide(a, b, split=0.5, min_labelled=200)
    assert (decision.winner, decision.promote) == ("A", False)


def test_significant_looking_but_too_small_is_not_promoted() -> None:
    a, b = arms((30, 30, 10), (30, 30, 29))
    assert two_proportion_test(10, 30, 29, 30)[1] < 0.001  # type: ignore[index]
    decision = decide(a, b, split=0.5, min_labelled=200)
    assert decision.winner is None and not decision.promote
    assert "too few labelled requests on arm A and B" in decision.reason


def test_no_significant_difference_keeps_the_control() -> None:
    a, b = arms((500, 400, 340), (500, 400, 345))
    decision = decide(a, b, split=0.5, min_labelled=200)
    assert decision.winner is None and "no significant difference" in decision.reason


def test_a_tie_keeps_the_control_under_both_rules() -> None:
    a, b = arms((300, 250, 200), (300, 250, 200))
    assert decide(a, b, split=0.5, min_labelled=10).winner is None
    assert decide(a, b, split=0.5, min_labelled=10, rule=RULE_HIGHER_ACCURACY).winner is None


def test_sample_ratio_mismatch_blocks_promotion() -> None:
    a, b = arms((700, 400, 280), (300, 290, 270))
    decision = decide(a, b, split=0.5, min_labelled=200)
    assert decision.winner is None and "sample ratio mismatch" in decision.reason


def test_an_arm_without_requests_or_labels_divides_by_nothing() -> None:
    a, b = arms((100, 50, 40), (0, 0, 0))
    for rule in ("significance", RULE_HIGHER_ACCURACY):
        decision = decide(a, b, split=0.5, min_labelled=10, rule=rule)
        assert decision.winner is None and "no labelled requests on arm B" in decision.reason
        assert decision.arms["B"].accuracy is None and decision.arms["B"].error_rate is None
        assert "Model #2 accuracy: n/a" in decision.text()


def test_unlabelled_requests_do_not_count_as_wrong() -> None:
    a, b = arms((1000, 10, 9), (1000, 10, 5))
    decision = decide(a, b, split=0.5, min_labelled=1, rule=RULE_HIGHER_ACCURACY)
    assert decision.arms["A"].accuracy == 0.9 and decision.arms["B"].accuracy == 0.5


def test_the_tutorial_rule_promotes_the_higher_accuracy_without_a_test() -> None:
    a, b = arms((20, 20, 15), (20, 20, 16))
    decision = decide(a, b, split=0.5, min_labelled=200, rule=RULE_HIGHER_ACCURACY)
    assert (decision.winner, decision.promote) == ("B", True)
    assert "not tested for chance" in decision.reason


def test_unknown_rules_are_refused() -> None:
    a, b = arms((1, 1, 1), (1, 1, 1))
    with pytest.raises(ValueError, match="unknown decision rule"):
        decide(a, b, split=0.5, min_labelled=1, rule="coin flip")
