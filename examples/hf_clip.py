"""Record vision / text / heads gradient norms and LCA from a Hugging Face Trainer run.

A tiny CLIPModel built from a random configuration (a few thousand weights) learns to match
random "images" to random "captions" with the contrastive loss; ``LcaCallback`` records one row
per optimizer step and LCA every ``lca_every`` steps into ``OUT_DIR/run.zarr``. Run:
``python examples/hf_clip.py OUT_DIR``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import (
    CLIPConfig,
    CLIPModel,
    CLIPTextConfig,
    CLIPVisionConfig,
    Trainer,
    TrainingArguments,
)

from lca_toolkit import open_run
from lca_toolkit.integrations.transformers import LcaCallback

GROUPS = {
    "vision": "vision_model.",
    "text": "text_model.",
    "heads": ["visual_projection.", "text_projection.", "logit_scale"],
}
TOKENS, VOCAB, IMAGE = 6, 40, 16


def tiny_clip() -> CLIPModel:
    text = CLIPTextConfig(vocab_size=VOCAB, hidden_size=16, intermediate_size=32,
                          num_hidden_layers=1, num_attention_heads=2,
                          max_position_embeddings=TOKENS, bos_token_id=0, pad_token_id=1,
                          eos_token_id=2)
    vision = CLIPVisionConfig(hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                              num_attention_heads=2, image_size=IMAGE, patch_size=8)
    config = CLIPConfig(text_config=text.to_dict(), vision_config=vision.to_dict(),
                        projection_dim=8)
    return CLIPModel(config)


def per_sample_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Symmetric contrastive loss per pair (1-D, B): image->text and text->image cross-entropy
    of pair i against the other pairs of its batch, averaged."""
    out = model(input_ids=batch["input_ids"], pixel_values=batch["pixel_values"])
    logits = out.logits_per_image  # (B, B): image i against caption j
    B = logits.shape[0]
    target = torch.arange(B, device=logits.device)
    image_to_text = F.cross_entropy(logits, target, reduction="none")
    text_to_image = F.cross_entropy(logits.T, target, reduction="none")
    return (image_to_text + text_to_image) / 2


def pairs(n: int, seed: int) -> list[dict[str, torch.Tensor]]:
    """Captions are random tokens; each image is a fixed random pattern of its first token."""
    g = torch.Generator().manual_seed(seed)
    patterns = torch.randn(VOCAB, 3, IMAGE, IMAGE, generator=torch.Generator().manual_seed(99))
    ids = torch.randint(0, VOCAB, (n, TOKENS), generator=g)
    pixels = patterns[ids[:, 0]] + 0.5 * torch.randn(n, 3, IMAGE, IMAGE, generator=g)
    return [{"input_ids": ids[i], "pixel_values": pixels[i]} for i in range(n)]


def collate(rows: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    batch = {k: torch.stack([r[k] for r in rows]) for k in rows[0]}
    return {**batch, "return_loss": True}  # CLIPModel returns its contrastive loss


def main(out_dir: str | Path, steps: int = 40, quadrature: str | None = None) -> Path:
    """Train for ``steps`` optimizer steps; return the store's path.

    ``quadrature`` picks the LCA rule (``None``: the Tracker's default).
    """
    torch.manual_seed(0)
    out_dir = Path(out_dir)
    eval_set = pairs(32, seed=1)
    eval_batches = [collate(eval_set[i : i + 16]) for i in (0, 16)]  # the fixed subset E
    callback = LcaCallback(
        GROUPS, store=out_dir / "run.zarr", loss_fn=per_sample_loss, eval_batches=eval_batches,
        lca_every=max(steps // 4, 1), store_mode="overwrite", quadrature=quadrature,
    )
    args = TrainingArguments(
        output_dir=str(out_dir / "trainer"), max_steps=steps, per_device_train_batch_size=8,
        gradient_accumulation_steps=2, learning_rate=3e-3, max_grad_norm=1.0, report_to=[],
        save_strategy="no", logging_steps=max(steps // 4, 1), use_cpu=True,
        remove_unused_columns=False, disable_tqdm=True,
    )
    trainer = Trainer(model=tiny_clip(), args=args, train_dataset=pairs(256, seed=0),
                      data_collator=collate, callbacks=[callback])
    trainer.train()
    return out_dir / "run.zarr"


if __name__ == "__main__":
    path = main(sys.argv[1] if len(sys.argv) > 1 else "runs/hf_clip")
    run = open_run(path)
    print(run.steps()[["step", "loss", *[f"grad_norm/{g}" for g in GROUPS]]].tail())
    print(run.lca()[["start_step", "end_step", *[f"lca/{g}" for g in GROUPS], "residual"]])
