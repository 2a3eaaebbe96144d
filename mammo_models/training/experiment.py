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

from lca_toolkit import Tracker, distributed, open_run
from lca_toolkit.rundir import restore_rng, rng_states
from lca_toolkit.store import check_writable

from ..losses import per_sample_loss
from ..regularizers import ModalityDropoutConfig, sample_split_lr_alphas, split_lr_param_groups
from ..variants import build_model, param_groups
from . import checkpoint
from .blending import estimate_by_training, heldout_part
from .config import ExperimentConfig, run_settings
from .data_setup import RunData, build_run_data, eval_loader, lca_eval_batches, tta_loader
from .evaluate import predict, split_metrics
from .metrics import auc


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
class RunResult:
    """What a finished run prints and returns.

    Attributes:
        lca_share: each group's share of the total LCA (sum over intervals), so the numbers of the
            groups add up to 1 when every group helped; a negative share means the group's movement
            raised the loss overall.
        median_rel_residual: median over intervals of |residual| / |loss change|.
    """

    out: Path
    steps: int
    epochs: int
    best_epoch: int
    best_val_auc: float
    test_auc: float
    test_auc_benign: float
    tta: int = 10
    lca_share: dict[str, float] = field(default_factory=dict)
    median_rel_residual: float = math.nan
    notes: list[str] = field(default_factory=list)


@dataclass
class _EpochAccumulator:
    """Training predictions of the running epoch (for train loss/AUC), kept on the device."""

    losses: list[torch.Tensor] = field(default_factory=list)
    probs: list[torch.Tensor] = field(default_factory=list)
    labels: list[torch.Tensor] = field(default_factory=list)

    def add(
        self, losses: torch.Tensor, logits: torch.Tensor, batch: dict[str, torch.Tensor]
    ) -> None:
        self.losses.append(losses.detach().float())
        self.probs.append(torch.sigmoid(logits.detach().float()))
        self.labels.append(torch.stack([batch["malignant"], batch["benign"]], 1).float())

    def gathered(self, device: torch.device) -> _EpochAccumulator:
        """Every rank's predictions in one accumulator (itself in a single process)."""
        if not distributed.is_distributed():
            return self
        widths = {"losses": (), "probs": (2,), "labels": (2,)}
        out = _EpochAccumulator()
        for k, tail in widths.items():
            parts = getattr(self, k)
            local = torch.cat(parts) if parts else torch.zeros((0, *tail), device=device)
            both = distributed.all_gather_cat(local.float())
            setattr(out, k, [both] if len(both) else [])
        return out

    def metrics(self) -> dict[str, float]:
        if not self.losses:
            return {"train_loss": math.nan, "train_auc": math.nan, "train_auc_benign": math.nan}
        losses = torch.cat(self.losses).cpu().numpy()
        probs = torch.cat(self.probs).cpu().numpy()
        labels = torch.cat(self.labels).cpu().numpy()
        return {
            "train_loss": float(losses.mean()),
            "train_auc": auc(labels[:, 0], probs[:, 0], what="train malignant AUC"),
            "train_auc_benign": auc(labels[:, 1], probs[:, 1], what="train benign AUC"),
        }

    def state_dict(self) -> dict[str, Any]:
        return {k: [t.cpu() for t in getattr(self, k)] for k in ("losses", "probs", "labels")}

    def load_state_dict(self, state: dict[str, Any], device: torch.device) -> None:
        for k in ("losses", "probs", "labels"):
            setattr(self, k, [t.to(device) for t in state[k]])


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
        eval_batches = None
        if record.lca:
            eval_batches = self._lca_batches(run_data, _eval_epoch(state))
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
            loss_fn=(lambda m, b: per_sample_loss(m(b), b)) if record.lca else None,
            eval_batches=eval_batches,
            lca_every=record.lca_every if record.lca else None,
            quadrature=record.quadrature,
            rel_tol=record.rel_tol,
            max_panels=record.max_panels,
            bn_policy=record.bn_policy,
            config={"experiment": experiment_attrs},
            on_nonfinite=record.on_nonfinite,
            mirror=self.mirror,
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

    def _save_last(self, model, optimizer, tracker, epoch, start, acc, best) -> None:
        # Collectives (as is tracker.state_dict): every rank comes here.
        acc = acc.gathered(self.device)
        state = {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "tracker": tracker.state_dict(),  # also flushes the store: store and checkpoint agree
            "epoch": epoch,
            "start": start,
            "accumulator": acc.state_dict(),
            "best": best,
        }
        state["rng"], state["rng_cuda"] = rng_states()
        state["config"] = self.config.to_dict()
        if distributed.is_main():
            self.config.run_dir.save_resumable(state)

    def _train_and_test(
        self, run_data: RunData, model, optimizer, tracker: Tracker, state: dict[str, Any] | None
    ) -> RunResult:
        c = self.config
        n_epochs = c.n_epochs
        steps_per_epoch = len(run_data.loader)
        acc = _EpochAccumulator()
        best = {"epoch": -1, "val_auc": -math.inf}
        epoch, start = 0, 0
        if self.restart:
            tracker.restart()
        elif state is not None:
            try:
                model.load_state_dict(state["model"])
                optimizer.load_state_dict(state["optimizer"])
                tracker.load_state_dict(state["tracker"])
            except (RuntimeError, KeyError, ValueError) as exc:
                raise ResumeError(
                    f"--resume: {c.run_dir.last} does not fit this model: "
                    f"{str(exc).splitlines()[0]}"
                ) from None
            epoch, start, best = state["epoch"], state["start"], state["best"]
            if distributed.is_main():  # it holds every rank's predictions of the epoch so far
                acc.load_state_dict(state["accumulator"], self.device)
            restore_rng(state.get("rng", state.get("rng_torch")), state["rng_cuda"])
            self.echo(f"resuming at epoch {epoch}, step {tracker.step}")
        bar = tqdm(
            total=n_epochs * steps_per_epoch,
            initial=tracker.step,
            disable=not self.progress,
            desc=Path(c.out).stem,
            unit="step",
            dynamic_ncols=True,
        )
        val_loader = eval_loader(run_data.val, c.train_preset.eval_batch_size, c.num_workers)
        subset_loader = self._train_subset_loader(run_data) if self.train_subset_metrics else None
        stop = False  # --max-steps N: N steps in all, counted across resumes

        def at_limit() -> bool:
            return c.max_steps is not None and tracker.step >= c.max_steps

        new_e_each_epoch = c.record.lca and c.record.lca_set == "epoch"
        lca_epochs = c.record.lca_epochs
        while epoch < n_epochs and not stop:
            if start == 0 and at_limit():  # resumed where the limit ended an epoch
                break
            # --lca-epochs N: LCA ends before epoch N's first step, its open interval closed on
            # the E in force. A checkpoint written at the end of epoch N - 1 (start 0) predates
            # the stop and stops here; one written later holds a stopped Tracker already.
            if lca_epochs is not None and epoch >= lca_epochs:
                tracker.stop_lca()
            if new_e_each_epoch and tracker.lca_active and start == 0 and epoch > 0:
                # E of epoch 0 came with the Tracker
                tracker.set_eval_batches(self._lca_batches(run_data, epoch))
            # The sampler skips samples, the checkpoint counts optimizer steps (batches).
            run_data.sampler.set_epoch(epoch, start=start * run_data.loader.batch_size)
            run_data.train.set_epoch(epoch)
            model.train()
            for batch in run_data.loader:
                if at_limit():  # before the step: a resumed run at the limit trains none
                    stop = True
                    break
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
                    acc.add(losses, outputs["logits"], batch)
                start += 1
                bar.update(1)
                if tracker.step % 10 == 0:
                    shown = f"{best['val_auc']:.3f}" if best["epoch"] >= 0 else "n/a"
                    bar.set_postfix(loss=f"{loss.item():.3f}", best_val_auc=shown, refresh=False)
                if self.on_step is not None:
                    self.on_step(tracker.step)
                if c.checkpoint_every and tracker.step % c.checkpoint_every == 0:
                    self._save_last(model, optimizer, tracker, epoch, start, acc, best)
            partial = start < steps_per_epoch  # --max-steps stopped inside the epoch
            if partial:  # checkpoint before this partial epoch is logged: resume finishes it
                self._save_last(model, optimizer, tracker, epoch, start, acc, best)
            metrics = acc.gathered(self.device).metrics()
            if not distributed.is_main():  # rank 0 validates; the others go on to the next step
                tracker.log_epoch(epoch, metrics)
                epoch, start, acc = epoch + 1, 0, _EpochAccumulator()
                if partial:
                    break
                self._save_last(model, optimizer, tracker, epoch, start, acc, best)
                continue
            val_predictions = predict(model, val_loader, self.device)
            val = split_metrics(val_predictions, "val")
            metrics.update(val.as_dict("val"))
            if subset_loader is not None:
                sub = split_metrics(predict(model, subset_loader, self.device), "train subset")
                metrics.update(sub.as_dict("train_subset"))
                # Appendix C's ablation: the same predictions on a fixed tenth of the val set.
                strata = 2 * val_predictions["malignant_label"] + val_predictions["benign_label"]
                part = heldout_part(strata.to_numpy(), seed=c.seed)
                part_metrics = split_metrics(val_predictions.iloc[part], "val part")
                metrics.update(part_metrics.as_dict("val_part"))
            tracker.log_epoch(epoch, metrics)
            if not math.isnan(val.auc) and val.auc > best["val_auc"]:
                best = {"epoch": epoch, "val_auc": val.auc}
                c.run_dir.save_best({"model": model.state_dict(), "epoch": epoch, "val_auc": val.auc})
            if partial:
                epoch += 1
                break
            epoch, start, acc = epoch + 1, 0, _EpochAccumulator()
            self._save_last(model, optimizer, tracker, epoch, start, acc, best)
        bar.close()
        tracker.measure_open_interval()  # the last steps since a snapshot: intervals tile the run
        if tracker.lca_stopped_at is not None:
            self.notes.append(
                f"LCA recorded during the first {lca_epochs} epoch(s) only, up to step "
                f"{tracker.lca_stopped_at} (--lca-epochs); gradient norms for every step"
            )
        if tracker.nonfinite_skipped:
            self.notes.append(
                f"{tracker.nonfinite_skipped} step(s) with a non-finite loss or gradient skipped"
            )
        return self._test(run_data, model, tracker, best, epoch)

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


def lca_summary(run: Any) -> tuple[dict[str, float], float]:
    """Each group's share of the summed LCA, and the median relative residual, of a stored run."""
    lca = run.lca()
    if lca.empty:
        return {}, math.nan
    totals = {g: float(lca[f"lca/{g}"].sum()) for g in run.groups}
    whole = sum(totals.values())
    share = {g: v / whole for g, v in totals.items()} if whole else {}
    change = lca["loss_change"].abs().replace(0, np.nan)
    return share, float((lca["residual"].abs() / change).median())


def run_experiment(config: ExperimentConfig, **kwargs: Any) -> RunResult:
    """Run one experiment (see :class:`Experiment` for the keyword options)."""
    return Experiment(config, **kwargs).run()


def summary_lines(result: RunResult) -> list[str]:
    """The short printed summary of a run."""
    lines = [
        f"run store: {result.out}",
        f"steps: {result.steps} over {result.epochs} epochs; best epoch {result.best_epoch} "
        f"(val AUC {result.best_val_auc:.3f})",
        f"test AUC ({result.tta}x TTA): malignant {result.test_auc:.3f}, benign {result.test_auc_benign:.3f}",
    ]
    if result.lca_share:
        shares = ", ".join(f"{g} {100 * s:.1f}%" for g, s in result.lca_share.items())
        lines.append(f"share of the loss reduction (LCA): {shares}")
        lines.append(f"median relative LCA residual: {result.median_rel_residual:.2e}")
    lines += [f"note: {n}" for n in result.notes]
    return lines
