"""What `mlq ab show` draws and prints, from a report's figures: named algorithms, a y
range that shows a small difference, a time axis that reads for seconds and for days,
and the evidence in words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import pytest

from producer.ab_plot import draw_report, plot_report
from producer.ab_text import human_test
from shared.ab import ArmCounts, DecisionSettings, SampleSums, decide

START = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def report(span: timedelta, points: int = 24, accuracy: tuple[float, float] = (0.952, 0.955)):
    def arm(value: float, i: int) -> dict[str, Any]:
        return {
            "requests": 100 * i,
            "error_rate": 0.01,
            "labelled": 90 * i,
            "coverage": 0.9,
            "value": value,
            "low": value - 0.002,
            "high": value + 0.002,
        }

    timeline = [
        {
            "at": (START + span * (i / points)).isoformat(),
            "A": arm(accuracy[0], i),
            "B": arm(accuracy[1], i),
        }
        for i in range(1, points + 1)
    ]
    return {
        "id": 7,
        "title": "random forest@0.0.1 vs random forest@0.0.2",
        "mode": "split",
        "a": "random forest@0.0.1",
        "b": "random forest@0.0.2",
        "metric": "accuracy",
        "timeline": timeline,
    }


def tick_labels(figure: Any) -> list[str]:
    figure.canvas.draw()
    axes = figure.axes[-1]
    return [label.get_text() for label in axes.get_xticklabels() if label.get_text()]


@pytest.mark.parametrize("span", [timedelta(seconds=2), timedelta(days=3)])
def test_the_time_axis_reads_for_seconds_and_for_days(span: timedelta) -> None:
    figure = draw_report(report(span))
    labels = tick_labels(figure)
    plt.close(figure)
    assert len(set(labels)) >= 3  # not every tick "00:00:00", as a fixed format gave


def test_the_arms_are_named_and_a_small_difference_shows() -> None:
    figure = draw_report(report(timedelta(minutes=5)))
    top = figure.axes[0]
    legend = [text.get_text() for text in top.get_legend().get_texts()]
    low, high = top.get_ylim()
    plt.close(figure)
    assert legend == ["A: random forest@0.0.1 (control)", "B: random forest@0.0.2"]
    assert high - low < 0.05  # 0.952 and 0.955 a visible distance apart, not squashed in 0-1


def test_requests_all_at_one_moment_are_points(tmp_path: Path) -> None:
    single = report(timedelta(0), points=1)
    plot_report(single, path=tmp_path / "ab.png")
    assert (tmp_path / "ab.png").read_bytes()[:4] == b"\x89PNG"


def test_the_evidence_in_words() -> None:
    a = ArmCounts(1000, 3, 900, 720, SampleSums(997, 4.985, 0.029), eligible=990)
    b = ArmCounts(1000, 2, 880, 790, SampleSums(998, 5.0, 0.03), eligible=985)
    decision = decide(a, b, final=True, settings=DecisionSettings(min_labelled=100))
    shown = human_test(
        {
            "id": 3,
            "mode": "split",
            "a": "random forest@0.0.1",
            "b": "random forest@0.0.2",
            "settings": {"split": 0.5},
            "label_delay_s": 600,
            "created_at": "2026-12-03T09:00:00+00:00",
            "ends_at": "2026-12-04T09:00:00+00:00",
            "ended_at": "2026-12-03T10:00:00+00:00",
            "ended_by": "beat",
            "summary": {
                **decision.summary(),
                "algorithms": {"A": "random forest@0.0.1", "B": "random forest@0.0.2"},
            },
        }
    )
    assert "random forest@0.0.1 (A) vs random forest@0.0.2 (B), split 50%/50%" in shown
    assert "ended 2026-12-03T10:00:00+00:00 by beat" in shown
    assert "B more accurate" in shown and "always-valid interval" in shown
    assert "labelled passed (arm A 900, arm B 880; need 100)" in shown
    assert "guardrails: error rate: B 0.2% (2 of 1000 requests)" in shown
    assert "label delay 600s" in shown
