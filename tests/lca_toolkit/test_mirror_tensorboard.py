"""TensorBoard mirroring: event files equal the store, a failing mirror never stops training."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from problems import SmoothMLP, mlp_batches, mlp_loss

from lca_toolkit import Tracker, open_run
from lca_toolkit.errors import MissingExtraError, TrackerError
from lca_toolkit.mirrors import GuardedMirror, MirrorWarning

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

F32 = dict(rtol=2e-7, atol=0)  # TensorBoard keeps float32, the store float64


def train(tmp_path: Path, steps: int = 10, **tracker_options) -> Tracker:
    """A small loop: SGD on a two-branch MLP with BatchNorm (so a NaN-norm bn_buffers group)."""
    torch.manual_seed(0)
    model = SmoothMLP(seed=3, bn=True)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    tracker = Tracker(
        model,
        optimizer=opt,
        store=tmp_path / "run.zarr",
        loss_fn=mlp_loss,
        eval_batches=mlp_batches(n=12, batch_size=5),
        lca_every=3,
        transfer_every=4,  # several blocks of rows reach the mirror
        **tracker_options,
    )
    with tracker:
        model.train()
        for batch in mlp_batches(n=4 * steps, batch_size=4, seed=9):
            opt.zero_grad()
            loss = mlp_loss(model, batch).mean()
            loss.backward()
            tracker.after_backward(loss)
            opt.step()
            tracker.after_step()
            if tracker.step == 5:
                tracker.log_epoch(0, {"val_auc": 0.75})
    return tracker


def scalars(log_dir: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Tag -> (steps, values) of every scalar in the event files under ``log_dir``."""
    acc = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    acc.Reload()
    out = {}
    for tag in acc.Tags()["scalars"]:
        events = acc.Scalars(tag)
        out[tag] = (np.array([e.step for e in events]), np.array([e.value for e in events]))
    return out


def test_event_files_hold_every_step_and_interval_of_the_store(tmp_path):
    tb = tmp_path / "tb"
    train(tmp_path, mirror=f"tensorboard:{tb}")
    run = open_run(tmp_path / "run.zarr")
    steps, lca = run.steps(), run.lca()
    got = scalars(tb)

    assert run.groups == ["audio", "image", "bn", "head", "bn_buffers"]
    all_steps = steps["step"].to_numpy()
    assert all_steps.tolist() == list(range(1, 11))
    for name in ("loss", "grad_norm_total", "lr"):
        np.testing.assert_array_equal(got[name][0], all_steps, err_msg=name)
        np.testing.assert_allclose(got[name][1], steps[name], **F32, err_msg=name)
    for g in run.groups[:-1]:  # every step's norm, per group
        tag = f"grad_norm/{g}"
        np.testing.assert_array_equal(got[tag][0], all_steps, err_msg=tag)
        np.testing.assert_allclose(got[tag][1], steps[tag], **F32, err_msg=tag)
    assert "grad_norm/bn_buffers" not in got  # NaN (not measured) is left out

    ends = lca["end_step"].to_numpy()
    assert ends.tolist() == [3, 6, 9, 10]  # the last interval is measured at close()
    for g in run.groups:  # every interval's LCA and error estimate, per group
        for tag, column in ((f"lca/{g}", f"lca/{g}"), (f"lca_error/{g}", f"error/{g}")):
            np.testing.assert_array_equal(got[tag][0], ends, err_msg=tag)
            np.testing.assert_allclose(got[tag][1], lca[column], **F32, err_msg=tag)
    for name in ("residual", "loss_change"):
        np.testing.assert_array_equal(got[f"lca/{name}"][0], ends)
        np.testing.assert_allclose(got[f"lca/{name}"][1], lca[name], **F32)
    assert got["epoch/val_auc"][0].tolist() == [5]
    np.testing.assert_allclose(got["epoch/val_auc"][1], [0.75], **F32)


def test_a_failing_writer_warns_once_and_training_and_store_go_on(tmp_path, monkeypatch):
    from torch.utils.tensorboard import SummaryWriter

    reference = train(tmp_path / "plain")  # the same loop without a mirror

    def broken(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(SummaryWriter, "add_scalar", broken)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        tracker = train(tmp_path / "mirrored", mirror=f"tensorboard:{tmp_path / 'tb'}")
    mirror_warnings = [w for w in caught if issubclass(w.category, MirrorWarning)]
    assert len(mirror_warnings) == 1, [str(w.message) for w in caught]
    message = str(mirror_warnings[0].message)
    assert "tensorboard:" in message and "OSError: disk full" in message
    assert "run store is unaffected" in message
    assert not tracker.mirror.active

    run, plain = open_run(tmp_path / "mirrored" / "run.zarr"), open_run(tmp_path / "plain/run.zarr")
    assert run.status == "finished"
    for name in ("steps/step", "steps/grad_norm", "steps/loss", "lca/by_group", "lca/residual"):
        np.testing.assert_array_equal(run.array(name), plain.array(name), err_msg=name)
    assert len(run.steps()) == 10 and len(run.lca()) == 4 and len(run.epochs()) == 1
    for p, q in zip(tracker.model.parameters(), reference.model.parameters()):
        assert torch.equal(p, q)  # training unchanged


class Recorder:
    """A user mirror that keeps what it is given and fails at the second interval."""

    name = "recorder"

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.steps: list[int] = []

    def start(self, groups):
        self.calls.append(f"start {','.join(groups)}")

    def append_steps(self, block):
        self.steps += block.step.tolist()

    def append_lca(self, record):
        self.calls.append(f"lca {record.end_step}")
        if record.end_step == 6:
            raise ValueError("boom")

    def append_epoch(self, epoch, metrics, step):
        self.calls.append(f"epoch {epoch} at {step}")

    def truncate(self, *, last_step):
        self.calls.append(f"truncate {last_step}")

    def flush(self):
        pass

    def close(self):
        self.calls.append("close")


def test_a_user_mirror_gets_the_records_and_is_switched_off_at_its_first_error(tmp_path):
    recorder = Recorder()
    with pytest.warns(MirrorWarning, match="mirror 'recorder' failed in append_lca.*ValueError"):
        tracker = train(tmp_path, mirror=recorder)
    assert isinstance(tracker.mirror, GuardedMirror)
    assert recorder.calls == [
        "start audio,image,bn,head,bn_buffers",
        "lca 3",
        "epoch 0 at 5",
        "lca 6",
        "close",  # closed at the failure; nothing after it
    ]
    assert recorder.steps == [1, 2, 3, 4]  # the first block; the second came after the failure
    assert len(open_run(tmp_path / "run.zarr").steps()) == 10


def test_a_group_named_like_an_interval_tag_switches_the_mirror_off(tmp_path):
    model = SmoothMLP(seed=3)
    with pytest.warns(MirrorWarning, match="residual"):
        tracker = Tracker(
            model,
            {"residual": ["audio.", "image."], "head": "head."},
            mirror=f"tensorboard:{tmp_path / 'tb'}",
        )
    assert not tracker.mirror.active
    tracker.close()


def test_missing_tensorboard_is_one_line_naming_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # `import tensorboard` fails
    monkeypatch.delitem(sys.modules, "torch.utils.tensorboard", raising=False)
    with pytest.raises(MissingExtraError) as info:
        Tracker(SmoothMLP(), store=tmp_path / "run.zarr", mirror=f"tensorboard:{tmp_path}/tb")
    message = str(info.value)
    assert "\n" not in message and "pip install 'lca-toolkit[tensorboard]'" in message
    assert isinstance(info.value, ImportError)
    assert not (tmp_path / "run.zarr").exists()  # fails before the store is created


def test_bad_mirror_spec_names_the_accepted_form(tmp_path):
    with pytest.raises(TrackerError, match="tensorboard:DIR"):
        Tracker(SmoothMLP(), mirror="wandb:project")
    tracker = Tracker(SmoothMLP())  # the default: no mirror at all
    assert tracker.mirror is None
    tracker.close()


def test_resume_hides_what_the_stopped_run_logged_after_its_checkpoint(tmp_path):
    tb, store = tmp_path / "tb", tmp_path / "run.zarr"
    model = SmoothMLP(seed=3)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    batches = mlp_batches(n=32, batch_size=4, seed=9)

    def tracker(mode: str) -> Tracker:
        return Tracker(
            model, optimizer=opt, store=store, store_mode=mode, mirror=f"tensorboard:{tb}"
        )

    def loop(t: Tracker, part: list) -> None:
        for batch in part:
            opt.zero_grad()
            loss = mlp_loss(model, batch).mean()
            loss.backward()
            t.after_backward(loss)
            opt.step()
            t.after_step()

    first = tracker("create")
    loop(first, batches[:4])
    checkpoint = first.state_dict()
    loop(first, batches[4:6])  # steps 5 and 6 reach the store and TensorBoard, then a stop
    first.close("interrupted")
    resumed = tracker("resume")
    resumed.load_state_dict(checkpoint)
    loop(resumed, batches[4:8])  # steps 5..8 again (other batches, other values)
    resumed.close()

    got = scalars(tb)
    steps = open_run(store).steps()
    assert got["grad_norm/audio"][0].tolist() == steps["step"].tolist() == list(range(1, 9))
    np.testing.assert_allclose(got["grad_norm/audio"][1], steps["grad_norm/audio"], **F32)


def test_only_rank_0_mirrors(tmp_path, monkeypatch):
    from lca_toolkit import distributed

    monkeypatch.setattr(distributed, "is_main", lambda: False)  # as on rank 1 of a DDP run
    tracker = Tracker(SmoothMLP(), store=tmp_path / "run.zarr", mirror=f"tensorboard:{tmp_path}/tb")
    assert tracker.mirror is None
    tracker.close()
    assert not (tmp_path / "tb").exists()
