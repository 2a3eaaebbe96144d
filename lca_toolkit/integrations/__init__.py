"""Attach the :class:`~lca_toolkit.Tracker` to training loops you do not write yourself.

* :mod:`lca_toolkit.integrations.lightning`: ``LcaCallback`` for ``lightning.pytorch.Trainer``
  (``pip install 'lca-toolkit[lightning]'``);
* :mod:`lca_toolkit.integrations.transformers`: ``LcaCallback`` for ``transformers.Trainer``
  (``pip install 'lca-toolkit[transformers]'``).

Both record what a hand-written loop with the Tracker records: one row per optimizer step (not per
micro-batch under gradient accumulation), gradient norms unscaled under mixed precision and read
before gradient clipping (:meth:`~lca_toolkit.Tracker.before_clip`), rank 0 writing under DDP, and
the Tracker's state saved with the trainer's checkpoints so a resumed fit continues the same store.
Nothing here is imported by ``lca_toolkit`` itself: each module needs its trainer's extra.
"""
