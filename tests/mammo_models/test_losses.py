"""per_sample_loss: the sum of two BCEs per sample, and the blended sum over heads."""

from __future__ import annotations

import math

import pytest
import torch

from mammo_models import per_sample_loss


def _bce(logit: float, y: float) -> float:
    p = 1.0 / (1.0 + math.exp(-logit))
    return -(y * math.log(p) + (1 - y) * math.log(1 - p))


def test_loss_is_sum_of_malignant_and_benign_bce_per_sample() -> None:
    logits = torch.tensor([[0.3, -1.2], [2.0, 0.5], [-0.7, 1.1]], dtype=torch.float64)
    batch = {
        "malignant": torch.tensor([1.0, 0.0, 1.0]),
        "benign": torch.tensor([0.0, 0.0, 1.0]),
    }
    loss = per_sample_loss({"logits": logits}, batch)
    assert loss.shape == (3,) and loss.dtype == torch.float64
    want = [
        _bce(logits[i, 0].item(), batch["malignant"][i].item())
        + _bce(logits[i, 1].item(), batch["benign"][i].item())
        for i in range(3)
    ]
    torch.testing.assert_close(loss, torch.tensor(want, dtype=torch.float64))


def test_column_order_is_malignant_then_benign() -> None:
    batch = {"malignant": torch.tensor([1.0]), "benign": torch.tensor([0.0])}
    right = per_sample_loss({"logits": torch.tensor([[10.0, -10.0]])}, batch)
    swapped = per_sample_loss({"logits": torch.tensor([[-10.0, 10.0]])}, batch)
    assert right.item() < 1e-3 < 10 < swapped.item()


def test_blended_loss_is_weighted_sum_over_heads() -> None:
    g = torch.Generator().manual_seed(0)
    B = 4
    outputs = {k: torch.randn(B, 2, generator=g) for k in ("logits", "logits_cc", "logits_mlo")}
    batch = {"malignant": torch.tensor([1.0, 0, 0, 1]), "benign": torch.tensor([0.0, 1, 0, 1])}
    w = torch.tensor([0.5, 0.3, 0.2])
    outputs["blend_weights"] = w.expand(B, 3)
    single = {
        k: per_sample_loss({"logits": outputs[k]}, batch) for k in outputs if k != "blend_weights"
    }
    want = 0.5 * single["logits"] + 0.3 * single["logits_cc"] + 0.2 * single["logits_mlo"]
    torch.testing.assert_close(per_sample_loss(outputs, batch), want)


def test_bad_inputs_name_the_key() -> None:
    batch = {"malignant": torch.tensor([1.0, 0.0]), "benign": torch.tensor([0.0, 1.0])}
    with pytest.raises(KeyError, match="'logits'"):
        per_sample_loss({"scores": torch.zeros(2, 2)}, batch)
    with pytest.raises(ValueError, match=r"outputs\['logits'\] must have shape \(B, 2\)"):
        per_sample_loss({"logits": torch.zeros(2, 3)}, batch)
    with pytest.raises(KeyError, match="'benign'"):
        per_sample_loss({"logits": torch.zeros(2, 2)}, {"malignant": batch["malignant"]})
    with pytest.raises(ValueError, match="benign"):
        per_sample_loss({"logits": torch.zeros(2, 2)}, {**batch, "benign": torch.zeros(3)})
    blended = {"logits": torch.zeros(2, 2), "blend_weights": torch.ones(2, 3)}
    with pytest.raises(KeyError, match="logits_cc"):
        per_sample_loss(blended, batch)
