"""A scene's augmentation draws: its own, whatever reads it."""

from __future__ import annotations

import numpy as np

from depthseg.data.draws import DRAW_NAMES, scene_draws


def test_draws_are_the_scenes_own() -> None:
    draws = scene_draws(0, 1, 5)
    assert draws.shape == (len(DRAW_NAMES),) and draws.dtype == np.float32
    assert ((draws >= 0) & (draws < 1)).all()
    np.testing.assert_array_equal(scene_draws(0, 1, 5), draws)
    assert not np.array_equal(scene_draws(0, 1, 9), draws)  # another scene
    assert not np.array_equal(scene_draws(0, 2, 5), draws)  # another epoch
    assert not np.array_equal(scene_draws(1, 1, 5), draws)  # another seed
