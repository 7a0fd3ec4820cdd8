"""A/B test statistics and decisions: pure functions of counts, no Celery, no database.

``decide`` is the entry point; ``statistics`` holds the per-arm summaries, checks and
effects, ``guardrails`` the error and latency guardrails, ``sequential`` the
always-valid tests they rest on.
"""

from shared.ab.decision import (
    MODE_SHADOW,
    MODE_SPLIT,
    RULE_SEQUENTIAL,
    Decision,
    DecisionSettings,
    decide,
)
from shared.ab.statistics import ArmCounts, PairedCounts, SampleSums

__all__ = [
    "MODE_SHADOW",
    "MODE_SPLIT",
    "RULE_SEQUENTIAL",
    "ArmCounts",
    "Decision",
    "DecisionSettings",
    "PairedCounts",
    "SampleSums",
    "decide",
]
