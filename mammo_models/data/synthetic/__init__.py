"""A deterministic synthetic two-view mammography data set: the bundled default.

What it is for
--------------
A **testbed**. It lets the view imbalance studied by Wu et al. (MIDL 2020) be reproduced, recorded
(gradient norms, LCA) and plotted on a laptop in minutes, and it exercises every step of the real
data path (16-bit PNG files, a manifest, left and right breasts, crop windows placed around the
breast). Numbers measured on it are not the paper's numbers and say nothing about real
mammograms.

What an image looks like
------------------------
Each patient has one exam with a left and a right breast, each imaged in CC and MLO. A breast is
drawn chest wall on the left: a half-ellipse against the left edge in CC; in MLO a taller, slightly
downward-tilted shape with the pectoral muscle as a bright triangle in the upper-left corner. Tissue
is brighter where the breast is thicker, with smooth random fibroglandular texture (its amount set
by a per-breast density) and quantum noise; the background is dark, with a small bright lead
marker in a far corner (so breast-box detection has to ignore it). Right breasts are then stored
mirrored, chest wall on the right, as a DICOM archive would hold them, so the loader's mirroring is
exercised.

Findings are independent per breast: a malignant one (an irregular mass with spicules and a few
calcification dots) with probability ``prevalence_malignant`` and a benign one (a smooth oval mass)
with probability ``prevalence_benign``. A finding sits at the same depth from the chest wall in both
views, as a real lesion does, and its contrast in each view is multiplied by that view's
conspicuity (``conspicuity_cc``, ``conspicuity_mlo``; 0 hides it in that view).

The planted cause (``--testbed``)
---------------------------------
Every testbed plants exactly one cause of view imbalance (:data:`TESTBEDS`):

* ``cue-mlo`` (default): lesions equally conspicuous in both views (one lesion has the same
  size in pixels and the same contrast in CC and MLO); in the MLO view only, a salient shortcut,
  a sharp-edged bright square well inside the breast (so inside every crop window, never cut),
  drawn in 90% of the training breasts with a finding (malignant or benign, so both losses can
  use it) and 5% of those without, and at one rate (20%) whatever the label in validation and
  test, where it therefore carries no information;
* ``cue-cc``: the mirror image, the shortcut in CC;
* ``balanced``: no shortcut;
* ``mlo-blind``: the MLO image carries neither lesion nor shortcut;
* ``lesion-mlo``: no shortcut; lesions at half their contrast in CC in every split.

What is planted is measured, not asserted: ``synthetic.json`` holds a ``calibration`` block
(:mod:`..calibration`) with the integrated signal of a lesion per view and of the shortcut (the
shortcut carries at least 3x a lesion's at the ``small`` and ``demo`` scales), the training and
held-out AUC of a linear probe that learns the shortcut from block-averaged pixels, and the AUC
of the heatmaps alone. Whether a network's columns then divide the learning the way the cause
predicts is what the recipes measure and report (``figures/README.md``); nothing here claims it.

Heatmaps imitate a patch classifier, not the truth: a visible finding is marked with probability
``heatmap_detect`` and a random confidence, the other kind's map responds weakly to it, and every
map gets false-positive blobs, blur and noise, so that the heatmaps alone rank breasts with an
AUC of about 0.8 and image + heatmap models do not saturate.

Modules
-------
:mod:`.config` holds what determines a data set (:class:`SyntheticConfig`, :data:`TESTBEDS`);
:mod:`.draw` draws it, pure arrays from the config's seed; :mod:`.files` writes it to disk,
caches it under its config's hash and swaps a new copy into place
(``generate_synthetic(config, root)``, ``load_synthetic``). The same config writes the same
bytes.
"""

from __future__ import annotations

from .config import GENERATOR_VERSION, TESTBEDS, SyntheticConfig, with_testbed
from .draw import DrawnBreast, DrawnView, draw_breasts
from .files import MANIFEST_NAME, META_NAME, generate_synthetic, load_synthetic

__all__ = [
    "GENERATOR_VERSION",
    "MANIFEST_NAME",
    "META_NAME",
    "TESTBEDS",
    "DrawnBreast",
    "DrawnView",
    "SyntheticConfig",
    "draw_breasts",
    "generate_synthetic",
    "load_synthetic",
    "with_testbed",
]
