"""A PNG of each arm's cumulative accuracy over a test, with 95% intervals."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any


def plot_timeline(timeline: list[dict[str, Any]], *, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")  # no display needed
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(8, 4.5))
    for arm, colour in (("A", "tab:blue"), ("B", "tab:orange")):
        points = [(datetime.fromisoformat(p["at"]), p[arm]) for p in timeline if p.get(arm)]
        if not points:
            continue
        times = mdates.date2num([t for t, _ in points])
        axes.plot(times, [v["accuracy"] for _, v in points], color=colour, label=f"arm {arm}")
        axes.fill_between(
            times,
            [v["low"] for _, v in points],
            [v["high"] for _, v in points],
            color=colour,
            alpha=0.2,
        )
    axes.xaxis_date()
    axes.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    axes.set_xlabel("time of the labelled request (UTC)")
    axes.set_title(title)
    axes.set_ylabel("accuracy of labelled requests")
    axes.set_ylim(0, 1)
    axes.legend(loc="lower right")
    if not timeline:
        axes.text(0.5, 0.5, "no labelled requests yet", ha="center", transform=axes.transAxes)
    figure.autofmt_xdate()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
