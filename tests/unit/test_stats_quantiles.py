from __future__ import annotations

import numpy as np
import pytest

from shared.db.stats import PERCENTILES, _quantiles


@pytest.mark.parametrize("values", [[5.0], [1.0, 2.0], list(range(1, 101)), [3.0, 1.0, 2.0, 10.0]])
def test_quantiles_interpolate_like_percentile_cont(values: list[float]) -> None:
    expected = np.percentile(values, [q * 100 for q in PERCENTILES], method="linear")
    assert _quantiles([float(v) for v in values]) == pytest.approx(list(expected))


def test_no_latencies_give_no_quantiles() -> None:
    assert _quantiles([]) == [None, None, None]
