"""A tiny two-tower model for the Hugging Face Trainer tests, and a Trainer that records the
per-group gradient norms just before it clips."""

from __future__ import annotations

import torch
import transformers
from torch import nn

GROUPS = {"a": "a.", "b": "b.", "head": "head."}


class TwoTower(nn.Module):
    """Returns ``{"loss": mean squared error}`` like a transformers model given labels."""

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.a = nn.Sequential(nn.Linear(4, 16), nn.Tanh())
        self.b = nn.Sequential(nn.Linear(3, 16), nn.Tanh())
        self.head = nn.Linear(16, 1)

    def forward(self, xa, xb, labels=None):
        out = self.head(self.a(xa) + self.b(xb)).squeeze(-1).float()
        return {"loss": None if labels is None else ((out - labels) ** 2).mean(), "logits": out}


def per_sample_loss(model: nn.Module, batch) -> torch.Tensor:
    return (model(batch["xa"], batch["xb"])["logits"] - batch["labels"]) ** 2


def samples(n: int = 64, seed: int = 1) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    xa, xb = torch.randn(n, 4, generator=g), torch.randn(n, 3, generator=g)
    y = xa[:, 0] - 2 * xb[:, 1] + 0.1 * torch.randn(n, generator=g)
    return [{"xa": xa[i], "xb": xb[i], "labels": y[i]} for i in range(n)]


def eval_batches(n: int = 16, batch_size: int = 8) -> list[dict[str, torch.Tensor]]:
    rows = samples(n, seed=7)
    return [
        {k: torch.stack([r[k] for r in rows[i : i + batch_size]]) for k in rows[0]}
        for i in range(0, n, batch_size)
    ]


def arguments(out_dir, **kwargs) -> transformers.TrainingArguments:
    options = dict(
        output_dir=str(out_dir),
        per_device_train_batch_size=4,
        learning_rate=0.05,
        lr_scheduler_type="constant",
        max_grad_norm=0.0,
        report_to=[],
        save_strategy="no",
        logging_steps=1,
        use_cpu=True,
        remove_unused_columns=False,
        dataloader_num_workers=0,
        disable_tqdm=True,
        seed=0,
    )
    options.update(kwargs)
    return transformers.TrainingArguments(**options)


class ReferenceTrainer(transformers.Trainer):
    """Records per-group torch.nn.utils.get_total_norm of the gradients right before the
    Trainer clips (or, with clipping off, right before the optimizer step)."""

    def __init__(self, *args, groups: dict[str, str], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.groups = groups
        self.norms: list[dict[str, float]] = []

    def _record(self, model) -> None:
        scaler = getattr(self.accelerator, "scaler", None)
        scale = scaler.get_scale() if scaler is not None and scaler.is_enabled() else 1.0
        row = {}
        for g, prefix in self.groups.items():
            grads = [p.grad for n, p in model.named_parameters() if n.startswith(prefix)]
            row[g] = float(torch.nn.utils.get_total_norm(grads)) / scale
        row["total"] = float(torch.nn.utils.get_total_norm([p.grad for p in model.parameters()])) / scale
        self.norms.append(row)

    def _clip_grad_norm(self, model):
        self._record(model)
        return super()._clip_grad_norm(model)

    def _get_grad_norm(self, model, grad_norm=None):
        if grad_norm is None:  # clipping off: nothing clipped, read before the step
            self._record(model)
        return super()._get_grad_norm(model, grad_norm=grad_norm)
