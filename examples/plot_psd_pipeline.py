"""
PSD features in a scikit-learn pipeline
=======================================

Predictive sparse decomposition (Kavukcuoglu, Ranzato & LeCun 2008) learns a dictionary ``D``
together
with an encoder ``F(x) = g*tanh(x W^T + b)`` trained to predict the sparse codes, so that features
come
from one product and a ``tanh`` instead of an optimisation. Here the 8x8 digits are
contrast-normalised,
coded by PSD's encoder and classified by a logistic regression, all in one
:class:`~sklearn.pipeline.Pipeline`; the same pipeline on the raw pixels is the reference. The
figure
shows the learned atoms, the training energy, and for one test digit the encoder's prediction
``F(x)``
beside the optimal code ``z*`` of the PSD energy.

Set ``SPARSECODE_QUICK=1`` (or pass ``--quick``) for a fast smoke run.
"""

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from _setup import example_setup, save_figure
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from estimators import ContrastNormalization, PredictiveSparseDecomposition

QUICK, _, OUT = example_setup(__doc__)

X, y = load_digits(return_X_y=True)
X = X.astype(np.float32)
Xtr, Xte, ytr, yte = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)

# %%
# The pipelines: raw pixels, and PSD encoder features (100 atoms for 64 pixels).
psd = PredictiveSparseDecomposition(
    n_components=100,
    alpha=0.2,
    beta=1.0,
    encoder="tanh",
    max_iter=3 if QUICK else 25,
    tol=0,  # a fixed number of passes
    batch_size=32,
    learning_rate=5e-3,
    random_state=0,
    device="cpu",
)
pipelines = {
    "raw pixels": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
    "PSD encoder": make_pipeline(
        ContrastNormalization(regularization=0.1),
        psd,
        StandardScaler(),
        LogisticRegression(max_iter=2000),
    ),
}
for name, pipe in pipelines.items():
    start = time.perf_counter()
    pipe.fit(Xtr, ytr)
    print(
        f"{name:>12}: test accuracy {pipe.score(Xte, yte):.3f} "
        f"(fit {time.perf_counter() - start:.1f} s)"
    )

# %%
# How well the encoder predicts the optimal codes, on the test digits.
Xn = ContrastNormalization(regularization=0.1).fit_transform(Xte)
prediction, code = psd.predict_codes(Xn)
error = ((prediction - code) ** 2).sum() / (code**2).sum()
print(f"relative prediction error ||F(x) - z*||^2 / ||z*||^2 on test digits: {error:.3f}")
print(f"energy per pass: {psd.loss_curve_[0]:.3f} -> {psd.loss_curve_[-1]:.3f}")

# %%
fig = plt.figure(figsize=(12, 4.5))
grid = fig.add_gridspec(1, 3, width_ratios=[1.2, 1, 1.4])
ax = fig.add_subplot(grid[0])
atoms = psd.components_.reshape(10, 10, 8, 8).transpose(0, 2, 1, 3).reshape(80, 80)
ax.imshow(atoms, cmap="gray")
ax.set_title("PSD atoms (decoder)")
ax.axis("off")
ax = fig.add_subplot(grid[1])
ax.plot(np.arange(1, len(psd.loss_curve_) + 1), psd.loss_curve_, marker="o")
ax.set_xlabel("pass")
ax.set_ylabel("mean energy at z*")
ax.set_title("training energy")
ax = fig.add_subplot(grid[2])
ax.stem(code[0], linefmt="C0-", markerfmt="C0o", basefmt=" ", label="z* (inference)")
ax.plot(prediction[0], "C1.", label="F(x) (encoder)")
ax.set_xlabel("code unit")
ax.set_title(f"one test digit (a {yte[0]})")
ax.legend()
fig.tight_layout()
save_figure(fig, OUT / "psd_pipeline.png", dpi=100)
