"""The per-epoch negative downsampling sampler."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from mammo_models.data import BalancedEpochSampler, DataConfigError

POSITIVE = np.array([True] * 10 + [False] * 40)


def _epoch(sampler: BalancedEpochSampler, e: int) -> list[int]:
    sampler.set_epoch(e)
    return list(sampler)


def test_every_positive_and_as_many_fresh_negatives_each_epoch():
    sampler = BalancedEpochSampler(POSITIVE, seed=0)
    negatives_seen = []
    for e in range(4):
        idx = _epoch(sampler, e)
        assert len(idx) == len(sampler) == 20
        assert len(set(idx)) == 20  # no repeats within an epoch
        assert set(range(10)) <= set(idx)  # every positive
        negs = sorted(i for i in idx if i >= 10)
        assert len(negs) == 10
        negatives_seen.append(tuple(negs))
    assert len(set(negatives_seen)) == 4  # redrawn every epoch
    assert not sampler.all_negatives_used
    assert "10 of 40 without" in sampler.summary()


def test_epoch_is_a_pure_function_of_seed_and_epoch():
    a = BalancedEpochSampler(POSITIVE, seed=7)
    sequence = [_epoch(a, e) for e in range(3)]
    b = BalancedEpochSampler(POSITIVE, seed=7)
    assert _epoch(b, 2) == sequence[2]  # no hidden state carried from earlier epochs
    assert [_epoch(b, e) for e in range(3)] == sequence
    c = BalancedEpochSampler(POSITIVE, seed=8)
    assert _epoch(c, 0) != sequence[0]
    assert sequence[0] != sorted(sequence[0])  # shuffled


def test_fewer_negatives_than_positives_uses_all_and_says_so():
    flags = np.array([True] * 6 + [False] * 4)
    sampler = BalancedEpochSampler(flags, seed=0)
    assert sampler.all_negatives_used and sampler.negatives_per_epoch == 4
    for e in range(3):
        assert sorted(_epoch(sampler, e)) == list(range(10))
    assert "fewer negatives than positives" in sampler.summary()
    equal = BalancedEpochSampler(np.array([True, False]), seed=0)
    assert equal.all_negatives_used  # exactly as many: nothing is redrawn either


def test_resume_mid_epoch_skips_what_was_seen():
    sampler = BalancedEpochSampler(POSITIVE, seed=1)
    full = _epoch(sampler, 3)
    sampler.set_epoch(3, start=8)
    assert list(sampler) == full[8:] and len(sampler) == 12
    restored = BalancedEpochSampler(POSITIVE, seed=1)
    restored.load_state_dict(sampler.state_dict())
    assert list(restored) == full[8:]
    with pytest.raises(DataConfigError, match="seed"):
        BalancedEpochSampler(POSITIVE, seed=2).load_state_dict(sampler.state_dict())


def test_ranks_split_one_epoch_without_overlap():
    flags = np.array([True] * 5 + [False] * 20)  # 10 per epoch, 3 ranks -> padded to 12
    ranks = [BalancedEpochSampler(flags, seed=4, num_replicas=3, rank=r) for r in range(3)]
    parts = [_epoch(s, 2) for s in ranks]
    assert [len(p) for p in parts] == [4, 4, 4] and all(len(s) == 4 for s in ranks)
    counts = Counter(i for p in parts for i in p)
    single = BalancedEpochSampler(flags, seed=4)
    assert set(counts) == set(_epoch(single, 2))
    assert sum(counts.values()) == 12 and max(counts.values()) <= 2


def test_bad_inputs():
    with pytest.raises(DataConfigError, match="none of the 3 breasts has a finding"):
        BalancedEpochSampler([False, False, False])
    with pytest.raises(DataConfigError, match="1-D sequence of booleans"):
        BalancedEpochSampler(np.ones((2, 2), bool))
    with pytest.raises(DataConfigError, match="rank"):
        BalancedEpochSampler(POSITIVE, num_replicas=2, rank=2)
