"""A PNG of an A/B test over request time: each arm's accuracy (a regressor's mean
absolute error) with its 95% interval, label coverage and error rate, one panel each.

The y range of the first panel is the arms' intervals plus a margin, not 0-1, so that
0.952 and 0.955 look different; the time axis labels itself for the span, from
fractions of a second (a batch) to days.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

COLOURS = {"A": "tab:blue", "B": "tab:orange"}


def plot_report(report: Mapping[str, Any], *, path: Path) -> None:
    """Write the PNG of `mlq ab show`'s report."""
    import matplotlib.pyplot as plt

    figure = draw_report(report)
    figure.savefig(path, dpi=100)
    plt.close(figure)


def draw_report(report: Mapping[str, Any]) -> Any:
    """The report's figure (a matplotlib Figure)."""
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    timeline: Sequence[Mapping[str, Any]] = report["timeline"]
    regressor = report.get("metric") == "mean_absolute_error"
    figure, (metric_axes, coverage_axes, error_axes) = plt.subplots(
        3, 1, figsize=(9, 8), sharex=True, gridspec_kw={"height_ratios": [2, 1, 1]}
    )
    times = [datetime.fromisoformat(point["at"]) for point in timeline]
    single = len(times) == 1  # every request at one moment (a batch): points, not lines
    for arm, name in (("A", report["a"]), ("B", report["b"])):
        label = f"{arm}: {name}" + (" (control)" if arm == "A" else "")
        present = [(t, p[arm]) for t, p in zip(times, timeline, strict=True) if p.get(arm)]
        if not present:
            continue
        when = mdates.date2num([t for t, _ in present])
        figures = [f for _, f in present]
        _series(metric_axes, when, figures, "value", arm, label, single, band=("low", "high"))
        _series(coverage_axes, when, figures, "coverage", arm, label, single)
        _series(error_axes, when, figures, "error_rate", arm, label, single)
    metric_axes.set_ylabel("mean absolute error" if regressor else "accuracy (labelled)")
    _fit_y(metric_axes, timeline, floor=0.0, ceiling=None if regressor else 1.0)
    coverage_axes.set_ylabel("label coverage")
    coverage_axes.set_ylim(-0.02, 1.02)
    error_axes.set_ylabel("error rate")
    error_axes.set_ylim(bottom=0)
    metric_axes.set_title(f"A/B test #{report['id']}: {report['title']} ({report['mode']})")
    metric_axes.legend(loc="best", fontsize="small")
    locator = mdates.AutoDateLocator()
    error_axes.xaxis.set_major_locator(locator)
    error_axes.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))
    error_axes.set_xlabel("request time (UTC); each point: every request up to then")
    if single:
        centre = mdates.date2num(times[0])
        error_axes.set_xlim(centre - 1 / 86400, centre + 1 / 86400)  # one second each side
    if not timeline:
        metric_axes.text(0.5, 0.5, "no requests yet", ha="center", transform=metric_axes.transAxes)
    for axes in (metric_axes, coverage_axes, error_axes):
        axes.grid(True, alpha=0.3)
    figure.tight_layout()
    return figure


def _series(
    axes: Any,
    when: Any,
    figures: list[Mapping[str, Any]],
    key: str,
    arm: str,
    label: str,
    single: bool,
    band: tuple[str, str] | None = None,
) -> None:
    points = [(w, f) for w, f in zip(when, figures, strict=True) if f.get(key) is not None]
    if not points:
        return
    x = [w for w, _ in points]
    y = [f[key] for _, f in points]
    colour = COLOURS[arm]
    with_band = band is not None and all(f.get(band[0]) is not None for _, f in points)
    if single:
        errors = None
        if with_band:
            assert band is not None
            errors = [[y[0] - points[0][1][band[0]]], [points[0][1][band[1]] - y[0]]]
        axes.errorbar(x, y, yerr=errors, fmt="o", color=colour, capsize=6, label=label)
        return
    axes.plot(x, y, color=colour, label=label, marker="." if len(x) < 30 else None)
    if with_band:
        assert band is not None
        low = [f[band[0]] for _, f in points]
        high = [f[band[1]] for _, f in points]
        axes.fill_between(x, low, high, color=colour, alpha=0.2)


def _fit_y(
    axes: Any, timeline: Sequence[Mapping[str, Any]], *, floor: float, ceiling: float | None
) -> None:
    """A y range around the arms' values and intervals, so that their difference shows."""
    values = [
        v
        for point in timeline
        for arm in ("A", "B")
        if point.get(arm)
        for v in (point[arm].get("value"), point[arm].get("low"), point[arm].get("high"))
        if v is not None
    ]
    if not values:
        return
    low, high = min(values), max(values)
    margin = max((high - low) * 0.1, 0.005)
    top = high + margin if ceiling is None else min(ceiling, high + margin)
    axes.set_ylim(max(floor, low - margin), top)
