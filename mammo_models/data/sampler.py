"""The per-epoch negative downsampling of the paper's training recipe, as a torch Sampler.

Each epoch holds every breast with a biopsy-confirmed finding (malignant or benign = 1) and an
equal number of breasts without one, drawn without replacement; the negatives are drawn again every
epoch, and the epoch's order is shuffled (paper, section 4). When there are fewer negatives than
positives, all negatives are used every epoch and :attr:`BalancedEpochSampler.all_negatives_used`
is true, so the run summary can say the epochs are not balanced.

Epoch ``e`` is a pure function of ``(seed, e)``: a generator seeded with ``[seed, e]`` draws it,
so a resumed run (``set_epoch(e, start=k)`` skips the ``k`` samples already seen) and every rank
of a distributed run see the same composition.

Shrunk epochs (``epoch_breasts``, ``--epoch-breasts``; the paper's appendix A): the LCA runs of
the paper sampled 970 exams per epoch, 10% of both the positives and the negatives of a full
epoch. With ``epoch_breasts=N`` every epoch holds ``N`` breasts in a full epoch's proportion,
``round(N * n_pos / full_epoch_size)`` positives and the rest negatives, each drawn without
replacement from all of the dataset's positives or negatives, fresh every epoch from the same
``[seed, e]`` generator. ``None`` (or ``N`` equal to the full epoch size) keeps the full epochs,
drawn exactly as before.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from torch.utils.data import Sampler

from .errors import DataConfigError


class BalancedEpochSampler(Sampler[int]):
    """All positives plus an equal number of fresh negatives each epoch, seeded.

    Args:
        positive: (N,) bool per dataset item (breast): has a biopsy-confirmed finding.
        seed: seed of the negative draw and of the shuffle.
        shuffle: shuffle the epoch (otherwise positives then negatives, each in index order).
        num_replicas: split every epoch across this many ranks (distributed training): the epoch
            is padded by repeating its first indices to a multiple of ``num_replicas`` and rank
            ``r`` takes positions ``r, r + num_replicas, ...``.
        rank: this process's rank.
        epoch_breasts: breasts per epoch (``--epoch-breasts``), at least 2 and at most the full
            epoch size; ``None``: full epochs.

    Raises:
        DataConfigError: no positives, a non-boolean input, a bad rank, or an ``epoch_breasts``
            that is not an integer in ``[2, full epoch size]``.
    """

    def __init__(
        self,
        positive: Sequence[bool] | np.ndarray,
        *,
        seed: int = 0,
        shuffle: bool = True,
        num_replicas: int = 1,
        rank: int = 0,
        epoch_breasts: int | None = None,
    ) -> None:
        flags = np.asarray(positive)
        if flags.ndim != 1 or not (flags.dtype == bool or np.isin(flags, (0, 1)).all()):
            raise DataConfigError(
                "BalancedEpochSampler: positive must be a 1-D sequence of booleans (one per "
                f"breast), got shape {flags.shape} dtype {flags.dtype}"
            )
        flags = flags.astype(bool)
        if not flags.any():
            raise DataConfigError(
                f"BalancedEpochSampler: none of the {flags.size} breasts has a finding "
                "(malignant or benign = 1); an epoch of positives plus as many negatives is empty"
            )
        if int(seed) < 0:
            raise DataConfigError(f"BalancedEpochSampler: seed must be >= 0, got {seed!r}")
        if num_replicas < 1 or not 0 <= rank < num_replicas:
            raise DataConfigError(
                f"BalancedEpochSampler: need 0 <= rank < num_replicas, got rank={rank}, "
                f"num_replicas={num_replicas}"
            )
        self.positive_indices = np.flatnonzero(flags)
        self.negative_indices = np.flatnonzero(~flags)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.epoch = 0
        self.start = 0
        self.epoch_breasts = _checked_epoch_breasts(epoch_breasts, self.full_epoch_size)

    @classmethod
    def from_dataset(cls, dataset: Any, **kwargs: Any) -> BalancedEpochSampler:
        """From anything with a ``positives`` (N,) bool attribute, e.g. ``MammoDataset``."""
        return cls(dataset.positives, **kwargs)

    @property
    def n_positive(self) -> int:
        return int(self.positive_indices.size)

    @property
    def n_negative(self) -> int:
        """Negatives available in the dataset."""
        return int(self.negative_indices.size)

    @property
    def full_epoch_size(self) -> int:
        """Breasts of a full epoch: every positive plus as many negatives (or all of them)."""
        return self.n_positive + min(self.n_positive, self.n_negative)

    @property
    def shrinks(self) -> bool:
        """Epochs hold fewer breasts than a full epoch (``epoch_breasts`` below its size)."""
        return self.epoch_breasts is not None and self.epoch_breasts < self.full_epoch_size

    @property
    def positives_per_epoch(self) -> int:
        """All positives, or a shrunk epoch's share: the full epoch's proportion of them."""
        if not self.shrinks:
            return self.n_positive
        return round(self.epoch_breasts * self.n_positive / self.full_epoch_size)

    @property
    def negatives_per_epoch(self) -> int:
        if not self.shrinks:
            return min(self.n_positive, self.n_negative)
        return self.epoch_breasts - self.positives_per_epoch

    @property
    def all_negatives_used(self) -> bool:
        """True when there are no more negatives than positives and epochs are full: every
        epoch uses all of them and the epochs have fewer negatives than positives (or exactly
        as many)."""
        return self.n_negative <= self.n_positive and not self.shrinks

    @property
    def epoch_size(self) -> int:
        """Samples in one epoch over all ranks, before padding."""
        return self.positives_per_epoch + self.negatives_per_epoch

    def summary(self) -> str:
        """One line for the run log: epoch composition, and whether negatives run short."""
        if self.shrinks:
            full = self.full_epoch_size
            text = (
                f"each epoch: {self.epoch_size} of {full} breasts "
                f"({100 * self.epoch_size / full:.0f}%, --epoch-breasts as in the paper's "
                f"appendix A): {self.positives_per_epoch} of {self.n_positive} with a finding + "
                f"{self.negatives_per_epoch} of {self.n_negative} without, redrawn every epoch "
                f"(seed {self.seed})"
            )
            if self.n_negative < self.n_positive:
                text += "; fewer negatives than positives, so epochs are not balanced"
            return text
        text = (
            f"each epoch: all {self.n_positive} breasts with a finding + "
            f"{self.negatives_per_epoch} of {self.n_negative} without, redrawn every epoch "
            f"(seed {self.seed})"
        )
        if self.all_negatives_used:
            text = (
                f"each epoch: all {self.n_positive} breasts with a finding + all "
                f"{self.n_negative} without (fewer negatives than positives, so epochs are "
                f"not balanced and no negatives are redrawn; seed {self.seed})"
            )
        return text

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Choose the epoch to draw and skip its first ``start`` samples of this rank (resume)."""
        if epoch < 0 or start < 0:
            raise DataConfigError(f"set_epoch: epoch and start must be >= 0, got {epoch}, {start}")
        self.epoch = int(epoch)
        self.start = int(start)

    def epoch_indices(self, epoch: int) -> np.ndarray:
        """Every rank's indices of an epoch, before the rank split: (epoch_size,) int64."""
        rng = np.random.default_rng([self.seed, int(epoch)])
        k = self.negatives_per_epoch
        if self.shrinks:  # positives drawn first, then negatives, from the same generator
            positives = _draw(rng, self.positive_indices, self.positives_per_epoch)
            negatives = _draw(rng, self.negative_indices, k)
        else:
            positives = self.positive_indices
            if k == self.n_negative:
                negatives = self.negative_indices.copy()
            else:
                negatives = _draw(rng, self.negative_indices, k)
        indices = np.concatenate([positives, negatives]).astype(np.int64)
        if self.shuffle:
            indices = indices[rng.permutation(indices.size)]
        return indices

    def _rank_indices(self) -> np.ndarray:
        indices = self.epoch_indices(self.epoch)
        total = -(-indices.size // self.num_replicas) * self.num_replicas
        if total > indices.size:
            indices = np.concatenate([indices, np.resize(indices, total - indices.size)])
        return indices[self.rank :: self.num_replicas]

    def __iter__(self) -> Iterator[int]:
        return iter(self._rank_indices()[self.start :].tolist())

    def __len__(self) -> int:
        per_rank = -(-self.epoch_size // self.num_replicas)
        return max(0, per_rank - self.start)

    def state_dict(self) -> dict[str, int | None]:
        """What a checkpoint needs to resume mid-epoch (seed and epoch size are checked on load:
        ``start`` counts samples of an epoch of that composition)."""
        return {
            "seed": self.seed,
            "epoch": self.epoch,
            "start": self.start,
            "epoch_breasts": self.epoch_breasts,
        }

    def load_state_dict(self, state: dict[str, int | None]) -> None:
        if int(state["seed"]) != self.seed:
            raise DataConfigError(
                f"BalancedEpochSampler.load_state_dict: checkpoint seed {state['seed']} differs "
                f"from this sampler's seed {self.seed}"
            )
        saved = state.get("epoch_breasts")  # absent from checkpoints of full epochs before it
        if saved != self.epoch_breasts:
            raise DataConfigError(
                f"BalancedEpochSampler.load_state_dict: checkpoint --epoch-breasts {saved} "
                f"differs from this sampler's {self.epoch_breasts}"
            )
        self.set_epoch(int(state["epoch"]), int(state.get("start", 0)))


def _draw(rng: np.random.Generator, pool: np.ndarray, size: int) -> np.ndarray:
    """``size`` distinct items of ``pool``, sorted (the epoch's shuffle orders them)."""
    return np.sort(rng.choice(pool, size=size, replace=False))


def _checked_epoch_breasts(value: object, full: int) -> int | None:
    """``epoch_breasts`` as an int, or a one-line error naming the option and the full epoch."""
    if value is None:
        return None
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        or not 2 <= value <= full
    ):
        raise DataConfigError(
            f"--epoch-breasts must be an integer from 2 to {full} (the breasts of a full epoch: "
            f"every positive plus as many negatives), got {value!r}"
        )
    return int(value)
