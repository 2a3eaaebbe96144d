"""Modality Dropout: per-sample, per-view, train-only, never both views, seeded."""

from __future__ import annotations

import pytest
import torch

from mammo_models import ModalityDropout, ModalityDropoutConfig, build_model


def _h(b: int = 64, d: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, d, generator=g) + 0.1, torch.rand(b, d, generator=g) + 0.1  # all > 0


def _dropped(h: torch.Tensor, h_out: torch.Tensor) -> torch.Tensor:
    """(B,) bool: whole row zeroed."""
    zero = (h_out == 0).all(dim=1)
    kept_rows = ~zero
    assert torch.equal(h_out[kept_rows], h[kept_rows]), "a kept row was altered (scaling none)"
    return zero


def test_rate_zero_is_identity_in_training() -> None:
    h_cc, h_mlo = _h()
    out = ModalityDropout(ModalityDropoutConfig(0.0, 0.0)).train()(h_cc, h_mlo)
    assert torch.equal(out[0], h_cc) and torch.equal(out[1], h_mlo)


@pytest.mark.parametrize("view", ["cc", "mlo"])
def test_rate_one_on_one_view_zeroes_exactly_that_view(view: str) -> None:
    h_cc, h_mlo = _h()
    cfg = (
        ModalityDropoutConfig(p_cc=1.0, p_mlo=0.0)
        if view == "cc"
        else ModalityDropoutConfig(0.0, 1.0)
    )
    out_cc, out_mlo = ModalityDropout(cfg).train()(h_cc, h_mlo)
    dropped, kept = (out_cc, (out_mlo, h_mlo)) if view == "cc" else (out_mlo, (out_cc, h_cc))
    assert torch.equal(dropped, torch.zeros_like(dropped))
    assert torch.equal(kept[0], kept[1])


@pytest.mark.parametrize(("p_cc", "p_mlo"), [(1.0, 1.0), (0.9, 0.7), (0.5, 0.5), (0.3, 0.95)])
def test_never_both_views_of_one_sample(p_cc: float, p_mlo: float) -> None:
    torch.manual_seed(0)
    module = ModalityDropout(ModalityDropoutConfig(p_cc, p_mlo)).train()
    h_cc, h_mlo = _h(b=4000)
    out_cc, out_mlo = module(h_cc, h_mlo)
    drop_cc, drop_mlo = _dropped(h_cc, out_cc), _dropped(h_mlo, out_mlo)
    assert not (drop_cc & drop_mlo).any()
    want_cc, want_mlo = ModalityDropoutConfig(p_cc, p_mlo).effective_drop_rates()
    assert abs(drop_cc.float().mean().item() - want_cc) < 0.03
    assert abs(drop_mlo.float().mean().item() - want_mlo) < 0.03


def test_both_rates_one_drops_exactly_one_view_per_sample_chosen_fairly() -> None:
    torch.manual_seed(1)
    h_cc, h_mlo = _h(b=2000)
    out_cc, out_mlo = ModalityDropout(ModalityDropoutConfig(1.0, 1.0)).train()(h_cc, h_mlo)
    drop_cc, drop_mlo = _dropped(h_cc, out_cc), _dropped(h_mlo, out_mlo)
    assert torch.equal(drop_cc, ~drop_mlo)
    assert 0.45 < drop_cc.float().mean().item() < 0.55


def test_eval_mode_is_identity() -> None:
    h_cc, h_mlo = _h()
    out = ModalityDropout(ModalityDropoutConfig(0.9, 0.9)).eval()(h_cc, h_mlo)
    assert torch.equal(out[0], h_cc) and torch.equal(out[1], h_mlo)


def test_seeded_runs_repeat_and_different_seeds_differ() -> None:
    module = ModalityDropout(ModalityDropoutConfig(0.5, 0.4)).train()
    h_cc, h_mlo = _h(b=256)

    def run(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
        torch.manual_seed(seed)
        return module(h_cc, h_mlo)

    a, b, c = run(3), run(3), run(4)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0])


def test_inverted_scaling_keeps_expectation() -> None:
    torch.manual_seed(2)
    cfg = ModalityDropoutConfig(0.6, 0.2, scaling="inverted")
    h_cc, h_mlo = torch.ones(20000, 1), torch.ones(20000, 1)
    out_cc, out_mlo = ModalityDropout(cfg).train()(h_cc, h_mlo)
    drop_cc, drop_mlo = cfg.effective_drop_rates()
    values = out_cc.unique().tolist()
    assert values[0] == 0.0 and values[1:] == [pytest.approx(1 / (1 - drop_cc))]
    assert abs(out_cc.mean().item() - 1.0) < 0.03
    assert abs(out_mlo.mean().item() - 1.0) < 0.03
    assert not ((out_cc == 0) & (out_mlo == 0)).any()


def test_config_validation_names_the_option() -> None:
    with pytest.raises(ValueError, match="p_cc"):
        ModalityDropoutConfig(1.5, 0.0)
    with pytest.raises(ValueError, match="p_mlo"):
        ModalityDropoutConfig(0.0, -0.1)
    with pytest.raises(ValueError, match="scaling"):
        ModalityDropoutConfig(0.1, 0.1, scaling="rescale")
    with pytest.raises(ValueError, match="one shape"):
        ModalityDropout(ModalityDropoutConfig(0.1, 0.1))(torch.ones(2, 4), torch.ones(3, 4))


def test_joint_model_drops_h_before_fusion() -> None:
    torch.manual_seed(5)
    model = build_model("joint", modality_dropout=(1.0, 0.0), noise_std=0.0).train()
    g = torch.Generator().manual_seed(0)
    batch = {
        "cc": torch.randn(4, 1, 37, 30, generator=g),
        "mlo": torch.randn(4, 1, 39, 28, generator=g),
    }
    logits = model(batch)["logits"]
    h_mlo = model.mlo_fc(model.mlo_column(batch["mlo"]))  # train-mode BN: same batch, same stats
    torch.testing.assert_close(logits, model.output_layer(h_mlo))
    model.eval()
    with torch.no_grad():
        h_cc = model.cc_fc(model.cc_column(batch["cc"]))
        h_mlo = model.mlo_fc(model.mlo_column(batch["mlo"]))
        assert torch.equal(model(batch)["logits"], model.output_layer(h_cc + h_mlo))
