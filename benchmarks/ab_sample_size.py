"""Labels a fixed-horizon test needs for a given power: the split test's from
statsmodels, the shadow test's computed exactly (no library has McNemar's power)."""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import binom
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize


def split_labels_for_power(difference: float, accuracy: float, alpha: float, power: float) -> int:
    """Labels per arm for the pooled z-test (statsmodels, Cohen's h)."""
    effect = proportion_effectsize(accuracy + difference, accuracy)
    return math.ceil(NormalIndPower().solve_power(effect_size=effect, alpha=alpha, power=power))


def mcnemar_power(records: int, discordant: float, share_b: float, alpha: float) -> float:
    """Exact power of McNemar's exact test on ``records`` labelled records: over the
    number of discordant ones, the chance B's share lands in the rejection region."""
    m = np.arange(records + 1)
    low = binom.ppf(alpha / 2, m, 0.5)
    low = np.where(binom.cdf(low, m, 0.5) <= alpha / 2, low, low - 1)
    reject = binom.cdf(low, m, share_b) + binom.sf(m - low - 1, m, share_b)
    reject = np.where(low >= 0, reject, 0.0)
    return float(np.sum(binom.pmf(m, records, discordant) * reject))


def mcnemar_labels_for_power(
    difference: float, discordant: float, alpha: float, power: float
) -> int:
    share_b = (discordant + difference) / (2 * discordant)
    step, records = 100, 0
    while step >= 1:  # coarse to fine: the smallest count reaching the power
        while mcnemar_power(records + step, discordant, share_b, alpha) < power:
            records += step
        step //= 10
    return records + 1
