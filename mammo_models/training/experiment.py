"""One training run of the paper's recipe with recording: data -> model -> loop -> Tracker -> store.

Recipe (section 4 and 6.2): Adam, batch 4; each epoch holds every breast with a biopsied finding
plus as many without, redrawn every epoch; malignant + benign BCE; validation AUC (malignant)
after every epoch selects the best checkpoint; the best checkpoint is tested with 10 random crop
windows per breast, predictions averaged. The LCA runs of appendix A shrink every epoch to 10% of
those breasts in the same proportion (``--epoch-breasts``) and record LCA over their first epochs
only (``--lca-epochs``).

Files of a run at ``out = runs/x.zarr``:

* ``runs/x.zarr``: the run store (gradient norms per step, LCA per interval, epoch metrics,
  results and test predictions);
* ``runs/x.zarr.ckpt/last.pt``: the resumable checkpoint (model, optimizer, sampler position,
  RNG streams, Tracker state), written atomically at every epoch end and every
  ``checkpoint_every`` optimizer steps;
* ``runs/x.zarr.ckpt/best.pt``: the model state of the best validation epoch (what Pretraining
  loads from uni-view runs).

Distributed (``torchrun ... lca-run mammo``): the model is wrapped in DDP, each rank trains on its
``1/N`` share of every global batch drawn by the same per-epoch sampler, and training metrics are
gathered from all ranks. Validation and test predictions are computed by rank 0 alone on the
unwrapped model while the other ranks wait at their next collective; only rank 0 writes the store,
``last.pt`` and ``best.pt``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Subset
from tqdm.auto import tqdm

from lca_toolkit import LcaConfig, Modality, Tracker, distributed, open_run
from lca_toolkit.quadrature import AdaptiveOptions
from lca_toolkit.rundir import restore_rng, rng_states
from lca_toolkit.store import check_writable

from ..losses import per_sample_loss
from ..regularizers import ModalityDropoutConfig, sample_split_lr_alphas, split_lr_param_groups
from ..variants import build_model, param_groups
from . import checkpoint
from .accumulator import EpochAccumulator
from .blending import estimate_by_training, heldout_part
from .config import ExperimentConfig, RecordConfig, run_settings
from .data_setup import RunData, build_run_data, eval_loader, lca_eval_batches, tta_loader
from .evaluate import predict, split_metrics
from .results import RunResult, lca_summary, summary_lines

__all__ = [
    "Experiment",
    "ResumeError",
    "RunResult",
    "resolve_device",
    "run_experiment",
    "summary_lines",
]


VIEW_MODALITIES = {"cc": Modality("cc", "mean"), "mlo": Modality("mlo", "mean")}
"""Input ablation of a two-view model: a view is removed by its mean image over E."""


def lca_config(record: RecordConfig) -> LcaConfig | None:
    """The Tracker's one LCA setting for what ``--lca-every``, ``--quadrature``... asked for."""
    if not record.lca:
        return None
    adaptive = AdaptiveOptions(rel_tol=record.rel_tol, max_panels=record.max_panels)
    return LcaConfig(
        record.lca_every, record.quadrature, adaptive=adaptive, bn_policy=record.bn_policy
    )


class ResumeError(RuntimeError):
    """``--resume`` cannot continue this run; the message says why."""


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when present; an unavailable CUDA device is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"--device {name}: CUDA is not available on this machine; use --device cpu"
        )
    return device


@dataclass
class _Position:
    """Where training stands: the epoch, its optimizer steps done, the best epoch so far and the
    epoch's training predictions (what ``last.pt`` holds beside model, optimizer and Tracker)."""

    epoch: int = 0
    start: int = 0
    best: dict[str, Any] = field(default_factory=lambda: {"epoch": -1, "val_auc": -math.inf})
    acc: EpochAccumulator = field(default_factory=EpochAccumulator)

    def next_epoch(self) -> None:
        self.epoch, self.start, self.acc = self.epoch + 1, 0, EpochAccumulator()


class Experiment:
    """Runs one :class:`ExperimentConfig` end to end (train, select, test), resumable.

    Args:
        config: the run.
        resume: continue from ``<out>.ckpt/last.pt`` and the existing store.
        progress: show a progress bar.
        echo: where one-line messages go (``print`` or ``click.echo``).
        on_step: called after every optimizer step with the global step (tests use it).
        train_subset_metrics: also log ``train_subset_loss`` / ``train_subset_auc`` every epoch,
            measured in eval mode on a fixed random subset of training breasts with the natural
            prevalence, as large as the validation set (Gradient Blending's "train" side).
        mirror: the Tracker's live mirror, e.g. ``"tensorboard:DIR"``; not part of the run's
            configuration (a resumed run may mirror elsewhere or not at all).
    """

    def __init__(
        self,
        config: ExperimentConfig,
        *,
        resume: bool = False,
        progress: bool = True,
        echo: Callable[[str], None] = print,
        on_step: Callable[[int], None] | None = None,
        train_subset_metrics: bool = False,
        mirror: str | None = None,
    ) -> None:
        self.config = config.resolved()  # the store holds the values that ran
        self.resume = resume
        self.progress = progress
        self.echo = echo
        self.on_step = on_step
        self.train_subset_metrics = train_subset_metrics
        self.mirror = mirror
        self.device = resolve_device(config.device)
        if self.device.type == "cuda" and distributed.is_distributed():
            self.device = torch.device("cuda", distributed.local_rank())  # one GPU per rank
        self.notes: list[str] = []
        self.restart = False  # --resume of a run that has no checkpoint yet

    # ----------------------------------------------------------------------------- building
    def _check_paths(self) -> None:
        run_dir = self.config.run_dir
        out, ckpt = run_dir.store, run_dir.checkpoint_dir
        check_writable(out)  # before any data is read: a read-only --out fails at once
        check_writable(ckpt)
        if self.resume:
            if not out.exists():
                raise ResumeError(
                    f"--resume: no run store at {out}; start the run without --resume"
                )
            if not run_dir.last.is_file():
                # Stopped before its first checkpoint: start again at step 0 in the same store.
                self.echo("no checkpoint was written before the run stopped: starting at step 0")
                run_dir.remove_checkpoints()
                self.restart = True
        elif ckpt.exists() and not out.exists():
            run_dir.remove_checkpoints()  # leftovers of a run whose store was deleted

    def _build_model(self, run_data: RunData) -> torch.nn.Module:
        c, r = self.config, self.config.regularizers
        torch.manual_seed(c.seed)
        blend = None
        if c.regularizer == "gradient_blending" and r.blend_weights is not None:
            blend = dict(zip(("joint", "cc", "mlo"), r.blend_weights, strict=True))
        model = build_model(
            c.variant,
            input_channels=run_data.data_config.channels,
            modality_dropout=(
                ModalityDropoutConfig(*r.modality_dropout, scaling=r.dropout_scaling)
                if c.regularizer == "modality_dropout"
                else None
            ),
            gradient_blending=c.regularizer == "gradient_blending",
            blend_weights=blend,
            pretraining=r.pretrained if c.regularizer == "pretraining" else None,
        )
        return model.to(self.device)

    def _build_optimizer(
        self, model: torch.nn.Module
    ) -> tuple[torch.optim.Optimizer, dict[str, Any]]:
        c = self.config
        if c.regularizer != "split_lr":
            return torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=c.lr), {}
        alphas = c.regularizers.split_lr_alphas or sample_split_lr_alphas(
            np.random.default_rng([c.seed, 0xA1])
        )
        groups = split_lr_param_groups(model, c.lr, alphas)
        rates = {g["name"]: float(g["lr"]) for g in groups}
        return torch.optim.Adam(groups, lr=c.lr), {"alphas": alphas, "split_lr": rates}

    # ----------------------------------------------------------------------------- running
    def run(self) -> RunResult:
        self._check_paths()
        blend_details = None
        r = self.config.regularizers
        if self.config.regularizer == "gradient_blending" and r.blend_weights is None:
            if distributed.is_distributed():
                raise ValueError(
                    "--regularizer gradient_blending under torchrun needs --blend-weights; "
                    "estimate them in a single-process run first"
                )
            weights, blend_details = estimate_by_training(
                self.config, self._run_estimation, self.echo
            )
            self.config = replace(self.config, regularizers=replace(r, blend_weights=weights))
        c = self.config
        run_data = build_run_data(c, self.device)
        self.echo(str(run_data.manifest.summary).rstrip())
        self.echo(run_data.sampler.summary())
        skipped = [str(p) for p in run_data.manifest.skipped_images]
        if skipped:
            self.echo(f"skipped {len(skipped)} unreadable image(s), first: {skipped[0]}")
            self.notes.append(f"{len(skipped)} unreadable image(s) skipped (--skip-bad-images)")
        if run_data.sampler.shrinks:
            s = run_data.sampler
            self.notes.append(
                f"each epoch: {s.epoch_size} of {s.full_epoch_size} breasts, redrawn every epoch "
                "(--epoch-breasts, appendix A)"
            )
        if run_data.sampler.all_negatives_used:
            self.notes.append(
                "fewer breasts without a finding than with one: every epoch uses all of them"
            )
        model = self._build_model(run_data)
        if c.sync_bn:  # before the optimizer: the converted modules keep the same tensors anyway
            model = distributed.convert_sync_batchnorm(model, self.device)
        distributed.warn_small_batchnorm(
            model, distributed.per_rank_batch_size(c.batch_size), synced=c.sync_bn
        )
        optimizer, lr_info = self._build_optimizer(model)
        checkpoint.check_room(c.checkpoint_dir, model)
        groups = param_groups(model)
        record = c.record
        state = self._load_checkpoint()
        on_e = record.lca or record.ablation_every is not None  # both measure on E
        eval_batches = self._lca_batches(run_data, _eval_epoch(state)) if on_e else None
        experiment_attrs = {**c.to_dict(), **lr_info, "n_epochs": c.n_epochs}
        if blend_details is not None:
            experiment_attrs["blend_estimation"] = blend_details
        self._forward = distributed.wrap(model)  # DDP under torchrun, else the model itself
        tracker = Tracker(
            self._forward,
            groups,
            optimizer=optimizer,
            store=c.out,
            store_mode="resume" if self.resume else "create",
            loss_fn=(lambda m, b: per_sample_loss(m(b), b)) if on_e else None,
            eval_batches=eval_batches,
            lca=lca_config(record),
            config={"experiment": experiment_attrs},
            on_nonfinite=record.on_nonfinite,
            mirror=self.mirror,
            modalities=VIEW_MODALITIES if record.ablation_every is not None else None,
            ablation_every=record.ablation_every,
        )
        with tracker:
            if c.data.skip_bad_images:
                tracker.update_attrs(bad_images_skipped=len(skipped), bad_images=skipped[:100])
            result = self._train_and_test(run_data, model, optimizer, tracker, state)
        return result

    def _load_checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint ``--resume`` continues from (``None`` for a fresh start), checked
        against the run's settings before anything is built from it."""
        if not self.resume or self.restart:
            return None
        c = self.config
        # On the CPU first: RNG states must stay CPU tensors; load_state_dict moves the rest.
        state = c.run_dir.load_resumable(map_location="cpu")
        check_resumable(state.get("config", {}), c)
        return state

    def _lca_batches(self, run_data: RunData, epoch: int) -> Iterable[dict[str, torch.Tensor]]:
        """The LCA evaluation subset E in force during ``epoch`` (``--lca-set``)."""
        c, tp = self.config, self.config.train_preset
        return lca_eval_batches(
            run_data,
            c.record.lca_subset,
            tp.eval_batch_size,
            c.seed,
            lca_set=c.record.lca_set,
            epoch=epoch,
        )

    def _run_estimation(self, config: ExperimentConfig) -> RunResult:
        """One Gradient Blending estimation run (resumed if it was interrupted)."""
        return Experiment(
            config,
            resume=config.run_dir.can_resume(),
            progress=self.progress,
            echo=self.echo,
            train_subset_metrics=True,
        ).run()

    def _train_subset_loader(self, run_data: RunData):
        n = min(len(run_data.train_eval), len(run_data.val))
        rng = np.random.default_rng([self.config.seed, 0x7A5])
        indices = np.sort(rng.choice(len(run_data.train_eval), size=n, replace=False))
        subset = Subset(run_data.train_eval, indices.tolist())
        return eval_loader(
            subset, self.config.train_preset.eval_batch_size, self.config.num_workers
        )

    def _save_last(self, model, optimizer, tracker: Tracker, pos: _Position) -> None:
        # Collectives (as is tracker.state_dict): every rank comes here.
        acc = pos.acc.gathered(self.device)
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "tracker": tracker.state_dict(),  # also flushes the store: store and checkpoint agree
            "epoch": pos.epoch,
            "start": pos.start,
            "accumulator": acc.state_dict(),
            "best": pos.best,
        }
        state["rng"], state["rng_cuda"] = rng_states()
        state["config"] = self.config.to_dict()
        if distributed.is_main():
            self.config.run_dir.save_resumable(state)

    def _restore(
        self, model, optimizer, tracker: Tracker, state: dict[str, Any] | None
    ) -> _Position:
        """Where training starts: step 0, or where ``last.pt`` left off."""
        pos = _Position()
        if self.restart:
            tracker.restart()
        if state is None:
            return pos
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            tracker.load_state_dict(state["tracker"])
        except (RuntimeError, KeyError, ValueError) as exc:
            raise ResumeError(
                f"--resume: {self.config.run_dir.last} does not fit this model: "
                f"{str(exc).splitlines()[0]}"
            ) from None
        pos.epoch, pos.start, pos.best = state["epoch"], state["start"], state["best"]
        if distributed.is_main():  # it holds every rank's predictions of the epoch so far
            pos.acc.load_state_dict(state["accumulator"], self.device)
        restore_rng(state.get("rng", state.get("rng_torch")), state["rng_cuda"])
        self.echo(f"resuming at epoch {pos.epoch}, step {tracker.step}")
        return pos

    def _at_limit(self, tracker: Tracker) -> bool:
        """``--max-steps N``: N steps in all, counted across resumes."""
        return self.config.max_steps is not None and tracker.step >= self.config.max_steps

    def _train_and_test(
        self, run_data: RunData, model, optimizer, tracker: Tracker, state: dict[str, Any] | None
    ) -> RunResult:
        c = self.config
        pos = self._restore(model, optimizer, tracker, state)
        steps_per_epoch = len(run_data.loader)
        bar = tqdm(
            total=c.n_epochs * steps_per_epoch,
            initial=tracker.step,
            disable=not self.progress,
            desc=Path(c.out).stem,
            unit="step",
            dynamic_ncols=True,
        )
        val_loader = eval_loader(run_data.val, c.train_preset.eval_batch_size, c.num_workers)
        subset_loader = self._train_subset_loader(run_data) if self.train_subset_metrics else None
        while pos.epoch < c.n_epochs:
            if pos.start == 0 and self._at_limit(tracker):  # resumed where the limit ended an epoch
                break
            self._begin_epoch(run_data, model, tracker, pos)
            self._train_epoch(run_data, model, optimizer, tracker, pos, bar)
            partial = pos.start < steps_per_epoch  # --max-steps stopped inside the epoch
            if partial:  # checkpoint before this partial epoch is logged: resume finishes it
                self._save_last(model, optimizer, tracker, pos)
            self._end_epoch(model, tracker, pos, val_loader, subset_loader)
            if partial:
                pos.epoch += 1
                break
            pos.next_epoch()
            self._save_last(model, optimizer, tracker, pos)
        bar.close()
        tracker.measure_open_interval()  # the last steps since a snapshot: intervals tile the run
        if tracker.lca_stopped_at is not None:
            self.notes.append(
                f"LCA recorded during the first {c.record.lca_epochs} epoch(s) only, up to step "
                f"{tracker.lca_stopped_at} (--lca-epochs); gradient norms for every step"
            )
        if tracker.nonfinite_skipped:
            self.notes.append(
                f"{tracker.nonfinite_skipped} step(s) with a non-finite loss or gradient skipped"
            )
        return self._test(run_data, model, tracker, pos.best, pos.epoch)

    def _begin_epoch(self, run_data: RunData, model, tracker: Tracker, pos: _Position) -> None:
        """LCA's schedule at the epoch boundary, then the sampler at the epoch's position."""
        c = self.config
        # --lca-epochs N: LCA ends before epoch N's first step, its open interval closed on the
        # E in force. A checkpoint written at the end of epoch N - 1 (start 0) predates the stop
        # and stops here; one written later holds a stopped Tracker already.
        if c.record.lca_epochs is not None and pos.epoch >= c.record.lca_epochs:
            tracker.stop_lca()
        new_e_each_epoch = c.record.lca and c.record.lca_set == "epoch"
        if new_e_each_epoch and tracker.lca_active and pos.start == 0 and pos.epoch > 0:
            # E of epoch 0 came with the Tracker
            tracker.set_eval_batches(self._lca_batches(run_data, pos.epoch))
        # The sampler skips samples, the checkpoint counts optimizer steps (batches).
        run_data.sampler.set_epoch(pos.epoch, start=pos.start * run_data.loader.batch_size)
        run_data.train.set_epoch(pos.epoch)
        model.train()

    def _train_epoch(
        self, run_data: RunData, model, optimizer, tracker: Tracker, pos: _Position, bar: Any
    ) -> None:
        """The optimizer steps of one epoch, from ``pos.start``, until its end or the step limit."""
        c = self.config
        for batch in run_data.loader:
            if self._at_limit(tracker):  # before the step: a resumed run at the limit trains none
                return
            batch = run_data.to_model_batch(batch, self.device)
            optimizer.zero_grad(set_to_none=True)
            outputs = self._forward(batch)
            losses = per_sample_loss(outputs, batch)
            loss = losses.mean()
            loss.backward()
            tracker.after_backward(loss)
            optimizer.step()
            tracker.after_step()
            if not tracker.last_skipped:  # a skipped non-finite step trains nothing
                pos.acc.add(losses, outputs["logits"], batch)
            pos.start += 1
            bar.update(1)
            if tracker.step % 10 == 0:
                best = pos.best
                shown = f"{best['val_auc']:.3f}" if best["epoch"] >= 0 else "n/a"
                bar.set_postfix(loss=f"{loss.item():.3f}", best_val_auc=shown, refresh=False)
            if self.on_step is not None:
                self.on_step(tracker.step)
            if c.checkpoint_every and tracker.step % c.checkpoint_every == 0:
                self._save_last(model, optimizer, tracker, pos)

    def _end_epoch(
        self, model, tracker: Tracker, pos: _Position, val_loader: Any, subset_loader: Any
    ) -> None:
        """The epoch's metrics into the store; rank 0 validates and keeps the best model.

        The other ranks log only the gathered training metrics and go on to their next
        collective while rank 0 validates.
        """
        metrics = pos.acc.gathered(self.device).metrics()  # a collective: every rank
        if not distributed.is_main():
            tracker.log_epoch(pos.epoch, metrics)
            return
        val_predictions = predict(model, val_loader, self.device)
        val = split_metrics(val_predictions, "val")
        metrics.update(val.as_dict("val"))
        if subset_loader is not None:
            sub = split_metrics(predict(model, subset_loader, self.device), "train subset")
            metrics.update(sub.as_dict("train_subset"))
            # Appendix C's ablation: the same predictions on a fixed tenth of the val set.
            strata = 2 * val_predictions["malignant_label"] + val_predictions["benign_label"]
            part = heldout_part(strata.to_numpy(), seed=self.config.seed)
            metrics.update(
                split_metrics(val_predictions.iloc[part], "val part").as_dict("val_part")
            )
        tracker.log_epoch(pos.epoch, metrics)
        if not math.isnan(val.auc) and val.auc > pos.best["val_auc"]:
            pos.best = {"epoch": pos.epoch, "val_auc": val.auc}
            self.config.run_dir.save_best(
                {"model": model.state_dict(), "epoch": pos.epoch, "val_auc": val.auc}
            )

    def _test(
        self, run_data: RunData, model, tracker: Tracker, best: dict[str, Any], epochs: int
    ) -> RunResult:
        c = self.config
        if not distributed.is_main():  # rank 0 tests; the others only join its final flush
            tracker.flush()
            nan = math.nan
            return RunResult(
                Path(c.out), tracker.step, epochs, -1, nan, nan, nan, c.train_preset.tta
            )
        if c.run_dir.best.is_file():
            model.load_state_dict(c.run_dir.load_best(map_location=self.device)["model"])
        else:
            self.notes.append("no epoch had a defined validation AUC: testing the last weights")
        tp = c.train_preset
        loader = tta_loader(
            run_data.test, tp.tta, tp.eval_batch_size, seed=c.seed, num_workers=c.num_workers
        )
        predictions = predict(model, loader, self.device)
        test = split_metrics(predictions, "test")
        results = {
            "best_epoch": int(best["epoch"]),
            "best_val_auc": float(best["val_auc"]) if best["epoch"] >= 0 else math.nan,
            "test_auc": test.auc,
            "test_auc_benign": test.auc_benign,
            "test_loss": test.loss,
            "test_tta": tp.tta,
            "n_test": len(predictions),
            "notes": self.notes,
        }
        tracker.update_attrs(results=results)
        tracker.write_table(
            "test_predictions",
            {
                "index": predictions["index"].to_numpy(np.int64),
                **{
                    k: predictions[k].to_numpy(np.float64)
                    for k in ("malignant_label", "benign_label", "malignant_prob", "benign_prob")
                },
            },
        )
        tracker.flush()
        share, residual = lca_summary(open_run(c.out))
        return RunResult(
            out=Path(c.out),
            steps=tracker.step,
            epochs=epochs,
            best_epoch=results["best_epoch"],
            best_val_auc=results["best_val_auc"],
            test_auc=test.auc,
            test_auc_benign=test.auc_benign,
            tta=tp.tta,
            lca_share=share,
            median_rel_residual=residual,
            notes=list(self.notes),
        )


def _eval_epoch(state: dict[str, Any] | None) -> int:
    """The epoch whose E was in force when checkpoint ``state`` was written (``lca_set='epoch'``).

    E switches at the start of an epoch's first step, so a checkpoint inside epoch ``e`` holds
    E of ``e``, and one written at its end (``epoch = e + 1, start = 0``) still holds E of ``e``:
    its open interval is closed on that E when epoch ``e + 1`` starts.
    """
    if state is None:
        return 0
    epoch, start = int(state["epoch"]), int(state["start"])
    return epoch if start > 0 or epoch == 0 else epoch - 1


def check_resumable(saved: dict[str, Any], config: ExperimentConfig) -> None:
    """Refuse to resume with settings that differ from the checkpoint's (naming the first ones)."""
    now = run_settings(config)
    try:  # options added since the checkpoint was written take their defaults
        then = run_settings(ExperimentConfig.from_dict(saved))
    except (ValueError, TypeError, KeyError):
        then = {}
    differing = [k for k in now if then.get(k) != now[k]]
    if differing:
        shown = ", ".join(
            f"{k} (checkpoint {then.get(k)!r}, now {now[k]!r})" for k in differing[:3]
        )
        raise ResumeError(
            f"--resume with settings that differ from the run's: {shown}; resume with the run's "
            "own settings (lca-run mammo --out STORE --resume reads them from the store)"
        )


def run_experiment(config: ExperimentConfig, **kwargs: Any) -> RunResult:
    """Run one experiment (see :class:`Experiment` for the keyword options)."""
    return Experiment(config, **kwargs).run()
