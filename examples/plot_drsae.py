"""
=====================================================================
DrSAE on digits: part-units, categorical units and accuracy against T
=====================================================================

A discriminative recurrent sparse auto-encoder (Rolfe & LeCun, ICLR 2013) is trained on
scikit-learn's 8x8 digits, each image scaled to unit L2 norm. Following the paper, every hidden
unit is placed on the part/categorical continuum by the angle between its encoder row ``E_i`` and
its decoder atom ``D_i``: units below 0.5 rad follow ISTA (*part-units*), units above 0.7 rad are
*categorical units*, which the paper finds to have strong classifier weights and whole-digit
prototypes as decoders. The first figure shows the decoder atoms sorted by that angle, each
categorical unit labelled with the class of its largest classifier weight; the second, held-out
accuracy against the number of unrolled steps ``T``.

What to expect at this budget (45 Adam passes over 1,257 images, against the paper's hundreds of SGD
passes over 50,000): the decoders are still close to their random start and almost every unit lies
above 0.7 rad, so the paper's split into part-units and categorical units is not reproduced here;
accuracy is about 0.98 for every T >= 2 (T = 1 is lower).

Run ``python examples/plot_drsae.py`` (``--quick`` or ``SPARSECODE_QUICK=1`` for a smoke run).
Figures go to ``examples/output/``.
"""

# %%
import os
import sys
import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.preprocessing import normalize

from estimators import DrSAE

QUICK = "--quick" in sys.argv or os.environ.get("SPARSECODE_QUICK") == "1"
OUT = Path(__file__).resolve().parent / "output"
OUT.mkdir(exist_ok=True)
torch.set_num_threads(1)
warnings.simplefilter("ignore", ConvergenceWarning)

X, y = load_digits(return_X_y=True)
Xtr, Xte, ytr, yte = train_test_split(normalize(X), y, test_size=0.3, random_state=0, stratify=y)
params = dict(optimizer="adam", learning_rate=1e-3, batch_size=32, tol=0, random_state=0, device="cpu",
              pretrain_iter=2 if QUICK else 5, max_iter=3 if QUICK else 40)

# %%
# Train T = 11 and sort the units by encoder/decoder angle
clf = DrSAE(n_components=100, n_layers=11, **params).fit(Xtr, ytr)
print(f"T=11, 100 units: held-out accuracy {clf.score(Xte, yte):.4f}")
E, D, C = clf.encoder_, clf.components_, clf.coef_
cosine = (E * D).sum(1) / np.maximum(np.linalg.norm(E, axis=1) * np.linalg.norm(D, axis=1), 1e-12)
angle = np.arccos(np.clip(cosine, -1, 1))
order = np.argsort(angle)
part, categorical = angle < 0.5, angle > 0.7
print(f"part-units (< 0.5 rad): {part.sum()}, categorical units (> 0.7 rad): {categorical.sum()}, "
      f"in between: {(~part & ~categorical).sum()}")
strength = np.linalg.norm(C, axis=0)
if part.any() and categorical.any():
    print(f"mean classifier weight norm: part {strength[part].mean():.3f}, "
          f"categorical {strength[categorical].mean():.3f}")

fig, axes = plt.subplots(10, 10, figsize=(9, 10))
for ax, unit in zip(axes.ravel(), order):
    ax.imshow(D[unit].reshape(8, 8), cmap="gray_r")
    ax.set_xticks([]), ax.set_yticks([])
    kind = "part" if part[unit] else ("cat " + str(clf.classes_[np.abs(C[:, unit]).argmax()])
                                      if categorical[unit] else "mid")
    ax.set_title(f"{angle[unit]:.2f} {kind}", fontsize=6, color="C3" if categorical[unit] else "k")
fig.suptitle("Decoder atoms sorted by encoder/decoder angle (rad): part-units first, categorical last")
fig.tight_layout()
fig.savefig(OUT / "drsae_units.png", dpi=110)
print(f"saved {OUT / 'drsae_units.png'}")

# %%
# Held-out accuracy against the number of unrolled steps T
depths = [2, 11] if QUICK else [1, 2, 4, 7, 11]
accuracy = []
for T in depths:
    model = DrSAE(n_components=64, n_layers=T, **params).fit(Xtr, ytr)
    accuracy.append(model.score(Xte, yte))
    print(f"T={T:2d}, 64 units: held-out accuracy {accuracy[-1]:.4f}, "
          f"final training loss {model.loss_curve_[-1]:.4f}")
fig, ax = plt.subplots(figsize=(5, 3.5))
ax.plot(depths, accuracy, "o-")
ax.set_xlabel("unrolled steps T")
ax.set_ylabel("held-out accuracy")
ax.set_title("DrSAE on digits (64 units)")
fig.tight_layout()
fig.savefig(OUT / "drsae_accuracy_vs_T.png", dpi=110)
print(f"saved {OUT / 'drsae_accuracy_vs_T.png'}")
