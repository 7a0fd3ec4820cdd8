"""A/B tests.

The statistics and the decision are pure functions of counts, no Celery, no database:
``decide`` (``decision``) is the entry point; ``statistics`` holds the per-arm
summaries, checks and effects, ``guardrails`` the error and latency guardrails,
``sequential`` the always-valid tests they rest on.

Their database side: ``start`` (and ``replay``) record a test, ``running`` is what
workers route by, ``answers`` and ``counts`` say what a test counts, ``evaluation``
decides (beat, `mlq ab stop`), ``ending`` ends a test once, ``report`` and ``timeline``
are what `mlq ab show` prints and plots, ``shadow`` stores a shadow test's answers.
Only the pure part is imported here.
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
