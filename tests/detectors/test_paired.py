"""The paired test shared by the retrainer's champion / challenger check and shadow mode."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.paired import p_more_errors
from detectors.shadow import shadow_quality_rows


def test_a_clearly_better_model_on_200_ids_is_told_apart_and_identical_ones_are_not() -> None:
    rng = np.random.default_rng(3)
    live = (rng.random(200) < 0.30).astype(float)  # wrong on ~30 %
    shadow = live * (rng.random(200) < 0.4)  # wrong only on some of the same ids: better
    assert p_more_errors(shadow, live, binary=True, alternative="two-sided") < 0.01
    assert p_more_errors(shadow, live, binary=True, alternative="less") < 0.01
    assert p_more_errors(shadow, live, binary=True, alternative="greater") > 0.99
    assert p_more_errors(live, live, binary=True, alternative="two-sided") == 1.0
    # regression: absolute errors, Wilcoxon signed-rank on the paired differences
    errors = rng.exponential(1.0, 200)
    assert p_more_errors(errors * 0.5, errors, binary=False, alternative="two-sided") < 0.01
    assert p_more_errors(errors, errors, binary=False, alternative="two-sided") == 1.0


def test_unpaired_errors_are_refused() -> None:
    with pytest.raises(ValueError, match="same examples"):
        p_more_errors(np.zeros(3), np.zeros(4), binary=True)


def test_shadow_quality_needs_both_sides_scored_the_same_way() -> None:
    # the live model is a regression on these labels, the shadow a classifier: not comparable
    rows = shadow_quality_rows([(2.5, "a", 3.0), (1.0, "b", 1.0)])
    assert [(r.metric, r.value) for r in rows] == [("shadow.quality.paired", 2.0)]
    assert [r.metric for r in shadow_quality_rows([])] == ["shadow.quality.paired"]
    mae = {r.metric: r.value for r in shadow_quality_rows([(1.0, 2.0, 1.5), (3.0, 3.0, 2.0)])}
    assert mae["shadow.quality.mae"] == pytest.approx(0.75)
    assert mae["shadow.quality.live_mae"] == pytest.approx(0.75)
    assert 0.0 < mae["shadow.quality.p_value"] <= 1.0
