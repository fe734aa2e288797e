from __future__ import annotations

from collections import Counter

import pytest

from depthseg.data.sampling import EpochSampler, SceneKey


def indices(sampler: EpochSampler) -> list[int]:
    return [key.index for key in sampler]


def test_keys_carry_the_epoch_and_its_size() -> None:
    sampler = EpochSampler(5, 64, shuffle=True, seed=0)
    sampler.set_epoch(3, 96)
    keys = list(sampler)
    assert len(keys) == len(sampler) == 5
    assert all(isinstance(key, SceneKey) for key in keys)
    assert {(key.image_size, key.epoch) for key in keys} == {(96, 3)}
    assert sorted(indices(sampler)) == [0, 1, 2, 3, 4]


def test_the_order_depends_on_seed_and_epoch_alone() -> None:
    first, again = (EpochSampler(50, 64, shuffle=True, seed=1) for _ in range(2))
    first.set_epoch(2, 64)
    again.set_epoch(2, 96)  # the size does not change the draw
    assert indices(first) == indices(again)
    again.set_epoch(3, 64)
    assert indices(first) != indices(again)
    other_seed = EpochSampler(50, 64, shuffle=True, seed=2)
    other_seed.set_epoch(2, 64)
    assert indices(first) != indices(other_seed)


def test_scenes_per_epoch_beyond_the_data_makes_full_shuffled_passes() -> None:
    sampler = EpochSampler(10, 64, shuffle=True, scenes_per_epoch=25)
    order = indices(sampler)
    assert len(order) == len(sampler) == 25
    assert sorted(order[:10]) == sorted(order[10:20]) == list(range(10))
    assert order[:10] != order[10:20]  # each pass is drawn afresh
    assert len(set(order[20:])) == 5


def test_scenes_per_epoch_below_the_data_reads_a_different_share_each_epoch() -> None:
    sampler = EpochSampler(100, 64, shuffle=True, scenes_per_epoch=30)
    shares = []
    for epoch in (1, 2):
        sampler.set_epoch(epoch, 64)
        shares.append(set(indices(sampler)))
    assert [len(share) for share in shares] == [30, 30]
    assert shares[0] != shares[1]


def test_without_shuffle_every_scene_once_in_order_whatever_scenes_per_epoch() -> None:
    sampler = EpochSampler(7, 64, shuffle=False, scenes_per_epoch=100)
    assert indices(sampler) == list(range(7))


@pytest.mark.parametrize("length", [10, 11, 13])
def test_processes_share_one_shuffled_epoch_with_equal_steps(length: int) -> None:
    ranks = [EpochSampler(length, 64, shuffle=True, rank=r, world_size=3) for r in range(3)]
    whole = EpochSampler(length, 64, shuffle=True).order().tolist()
    parts = [indices(sampler) for sampler in ranks]
    assert len({len(part) for part in parts}) == 1
    assert all(len(part) == len(sampler) for part, sampler in zip(parts, ranks, strict=True))
    # Together they read one order, cut to a multiple of the processes: no scene twice.
    together = [index for step in zip(*parts, strict=True) for index in step]
    assert together == whole[: len(together)]
    assert len(together) == length - length % 3


def test_processes_validate_every_scene_exactly_once() -> None:
    ranks = [EpochSampler(11, 64, shuffle=False, rank=r, world_size=3) for r in range(3)]
    counts = Counter(index for sampler in ranks for index in indices(sampler))
    assert counts == Counter(range(11))
    assert [len(sampler) for sampler in ranks] == [4, 4, 3]
