"""An A/B test's evidence as a person reads it: what `mlq ab show`, `stop` and `replay`
print without ``--json`` (which prints the same figures as one JSON document)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from shared.cli_output import key_values, table


def human_test(test: Mapping[str, Any]) -> str:
    """The test, its decision and, where there is one, its evidence."""
    header = {
        f"test #{test['id']}": f"{test['a']} (A) vs {test['b']} (B), {_mode(test)}",
        "state": _state(test),
    }
    live = test.get("live")
    summary = test.get("summary") or (live or {}).get("if_stopped_now")
    if live:
        header["beat would"] = f"{live['beat_would']}: {live['beat_reason']}"
    if summary:
        label = "decision" if test.get("ended_at") else "if stopped now"
        header[label] = summary.get("text")
    evidence = (summary or {}).get("evidence")
    if not evidence:  # nothing to show yet, or a test decided before evidence was kept
        return key_values(header)
    parts = [key_values(header), "", _arms_table(evidence, (summary or {}).get("algorithms"))]
    details = {
        "effect": _effect(evidence["effect"]),
        **_paired(evidence.get("paired")),
        "checks": "; ".join(_checks(evidence["checks"])),
        "guardrails": "; ".join(g["reason"] for g in evidence["guardrails"].values()),
        "settings": _settings(evidence["settings"], test.get("label_delay_s") or 0),
    }
    return "\n".join([*parts, "", key_values(details)])


def human_tests(tests: Sequence[Mapping[str, Any]]) -> str:
    rows = [
        {
            **test,
            "arms": f"{test['a']} vs {test['b']}",
            "result": (test.get("summary") or {}).get("text"),
        }
        for test in tests
    ]
    columns = (
        ("id", "id"),
        ("mode", "mode"),
        ("arms", "A vs B"),
        ("state", "state"),
        ("created_at", "created"),
        ("ended_at", "ended"),
        ("result", "result"),
    )
    return table(rows, columns)


def _mode(test: Mapping[str, Any]) -> str:
    if test["mode"] == "split":
        share = (test.get("settings") or {}).get("split", 0.5)
        return f"split {1 - share:.0%}/{share:.0%}"
    return test["mode"]


def _state(test: Mapping[str, Any]) -> str:
    if test.get("ended_at"):
        return f"ended {test['ended_at']} by {test['ended_by']}"
    if test["mode"] == "replay":
        return f"replaying since {test['created_at']}"
    return f"running since {test['created_at']}, ends {test['ends_at']}"


def _arms_table(evidence: Mapping[str, Any], names: Mapping[str, str] | None) -> str:
    regressor = evidence.get("metric") == "mean_absolute_error"
    rows = []
    for arm in ("A", "B"):
        figures = evidence["arms"][arm]
        latency = figures["latency"]["mean"]
        row = {
            "arm": arm,
            "algorithm": (names or {}).get(arm),
            "requests": figures["requests"],
            "errors": f"{figures['errors']} ({_percent(figures['error_rate'])})",
            "labelled": f"{figures['labelled']} of {figures['eligible']}",
            "coverage": _percent(figures["label_coverage"]),
            "latency": "-" if latency is None else f"{latency * 1000:.2f} ms",
        }
        if regressor:
            row["metric"] = _number(figures.get("mean_absolute_error"))
        else:
            interval = figures.get("accuracy_interval")
            row["metric"] = _number(figures.get("accuracy")) + (
                f" [{interval[0]:.4f}, {interval[1]:.4f}]" if interval else ""
            )
        rows.append(row)
    metric = "mean abs. error" if regressor else "accuracy [95%]"
    columns = (
        ("arm", "arm"),
        ("algorithm", "algorithm"),
        ("requests", "requests"),
        ("errors", "errors"),
        ("labelled", "labelled of eligible"),
        ("coverage", "coverage"),
        ("metric", metric),
        ("latency", "mean latency"),
    )
    return table(rows, columns)


def _effect(effect: Mapping[str, Any]) -> str:
    if effect["estimate"] is None:
        return f"{effect['metric']}: nothing to measure yet"
    accuracy = "accuracy" in effect["metric"]
    scale, unit = (100, " points") if accuracy else (1, "")
    fixed = effect.get("fixed_horizon_p_value")
    return (
        f"{effect['metric']}: {effect['estimate'] * scale:+.2f}{unit}, always-valid interval "
        f"{effect['low'] * scale:+.2f} to {effect['high'] * scale:+.2f}, "
        f"p={_p(effect['p_value'])} (a single planned look would give p={_p(fixed)})"
    )


def _paired(paired: Mapping[str, Any] | None) -> dict[str, str]:
    if not paired:
        return {}
    agreement = paired.get("agreement_rate")
    return {
        "pairs": (
            f"{paired['compared']} records both answered, agreement {_percent(agreement)}; "
            f"labelled: both right {paired['both_correct']}, only A {paired['only_a_correct']}, "
            f"only B {paired['only_b_correct']}, both wrong {paired['both_wrong']}"
        )
    }


def _checks(checks: Mapping[str, Any]) -> list[str]:
    said = []
    minimum = checks["min_labelled"]
    counts = ", ".join(f"{k} {v}" for k, v in minimum["labelled"].items())
    said.append(f"labelled {_passed(minimum)} ({counts}; need {minimum['needed']})")
    coverage = checks["coverage"]
    shares = ", ".join(f"{k} {_percent(v)}" for k, v in coverage["coverage"].items())
    said.append(f"coverage {_passed(coverage)} ({shares}; need {coverage['needed']:.0%})")
    for name, label in (("uneven_feedback", "even feedback"), ("sample_ratio", "sample ratio")):
        check = checks.get(name)
        if check is not None:
            tested = "" if check["p_value"] is None else f" (p={_p(check['p_value'])})"
            said.append(f"{label} {_passed(check)}{tested}")
    return said


def _settings(settings: Mapping[str, Any], label_delay_s: float) -> str:
    return (
        f"rule {settings['rule']}, alpha {settings['alpha']}, at least "
        f"{settings['min_labelled']} labelled, coverage {settings['min_coverage']:.0%}, "
        f"label delay {label_delay_s:g}s, guardrail alpha {settings['guardrail_alpha']}, "
        f"latency margin {settings['latency_margin']:.0%}"
    )


def _passed(check: Mapping[str, Any]) -> str:
    return "passed" if check["passed"] else "FAILED"


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _number(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _p(value: float | None) -> str:
    return "-" if value is None else f"{value:.3g}"
