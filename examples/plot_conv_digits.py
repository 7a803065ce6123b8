"""
================================================================
Digit classification with convolutional sparse features
================================================================

A :class:`estimators.ConvSparseAutoencoder` (ConvPSD, Kavukcuoglu et al. 2010) learns 3x3 kernels
and a fast convolutional encoder on the 8x8 digits of scikit-learn; its encoder's feature maps,
max-pooled over 2x2 windows of ``|z|``, feed a logistic regression in one ``Pipeline`` (the images
enter as the usual 64-column rows, with ``image_shape=(8, 8)``). The same classifier on the raw
pixels is the baseline. Saves the kernels and the feature maps of one digit to ``examples/output/``.

Run ``python examples/plot_conv_digits.py`` (``--quick`` or ``SPARSECODE_QUICK=1`` for a smoke run).
"""

# %%
import copy
import time

import matplotlib.pyplot as plt
import numpy as np
from _setup import example_setup, save_figure
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from estimators import ConvSparseAutoencoder

quick, device, out_dir = example_setup(__doc__, device=True)

# %%
# Data: 1797 digits of 8x8 pixels in [0, 1], as 64-column rows.
X, y = load_digits(return_X_y=True)
X = X / 16.0
if quick:
    X, y = X[:600], y[:600]
X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.3, random_state=0, stratify=y)
print(f"{len(X_train)} training and {len(X_test)} test digits of 8x8 pixels.")

# %%
# Pipelines: convolutional sparse features + logistic regression, and raw pixels + the same
# classifier.
conv = ConvSparseAutoencoder(
    n_components=16,
    kernel_size=3,
    alpha=0.1,
    image_shape=(8, 8),
    pooling="max",
    pool_size=2,
    max_iter=3 if quick else 15,
    batch_size=64,
    learning_rate=1e-2,
    inference_max_iter=30,
    tol=0,  # a fixed number of passes
    random_state=0,
    device=device,
)
model = make_pipeline(conv, StandardScaler(), LogisticRegression(max_iter=3000))
baseline = make_pipeline(StandardScaler(), LogisticRegression(max_iter=3000))
t = time.perf_counter()
model.fit(X_train, y_train)
t_fit = time.perf_counter() - t
baseline.fit(X_train, y_train)
features = model[0].transform(X_test)
print(
    f"ConvSparseAutoencoder: {conv.n_components} kernels of {model[0].kernel_size_}, "
    f"{model[0].n_iter_} passes in {t_fit:.1f} s; energy {model[0].loss_curve_[0]:.3f} -> "
    f"{model[0].loss_curve_[-1]:.3f}."
)
print(
    f"{features.shape[1]} pooled features per digit, {np.mean(features > 0):.0%} of them non-zero."
)
acc_conv, acc_raw = model.score(X_test, y_test), baseline.score(X_test, y_test)
print(f"test accuracy: conv sparse features {acc_conv:.3f}, raw pixels {acc_raw:.3f}")

# %%
# Figure: the decoder kernels, one digit and its encoder feature maps.
fitted = model[0]
maps = (
    copy.deepcopy(fitted)
    .set_params(pooling=None)
    .transform(X_test[:1])
    .reshape(conv.n_components, 6, 6)
)
fig, axes = plt.subplots(3, conv.n_components // 2 + 1, figsize=(12, 4.5))
for ax in axes.ravel():
    ax.axis("off")
axes[0, 0].imshow(X_test[0].reshape(8, 8), cmap="gray_r")
axes[0, 0].set_title(f"digit {y_test[0]}", fontsize=9)
for k in range(conv.n_components):
    row, col = divmod(k, conv.n_components // 2)
    axes[row, col + 1].imshow(fitted.components_[k, 0], cmap="RdBu_r")
axes[2, 0].text(0, 0.5, "feature maps\nof the digit:", fontsize=9)
kmax = np.argsort(-np.abs(maps).sum((1, 2)))[: conv.n_components // 2]
for i, k in enumerate(kmax):
    axes[2, i + 1].imshow(maps[k], cmap="RdBu_r", vmin=-np.abs(maps).max(), vmax=np.abs(maps).max())
    axes[2, i + 1].set_title(f"map {k}", fontsize=8)
fig.suptitle(
    f"ConvPSD 3x3 kernels on digits (rows 1-2) and the most active maps of one digit; "
    f"test accuracy {acc_conv:.3f} (raw pixels {acc_raw:.3f})",
    fontsize=10,
)
save_figure(fig, out_dir / "conv_digits.png", dpi=90)
