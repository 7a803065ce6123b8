"""
=====================================================================
Convolutional versus patch-based filters: fewer shifted duplicates
=====================================================================

Learns 16 kernels of 7x7 pixels on whole crops of scikit-learn's sample images with
:class:`estimators.ConvSparseAutoencoder` (convolutional PSD, Kavukcuoglu et al. 2010), and 16 atoms
on 7x7 patches of the same crops with :class:`estimators.DictionaryLearning`. A patch dictionary
must
explain every patch on its own, so it spends atoms on shifted copies of the same edge; a
convolutional one codes all shifts with the same kernel.

Shifted-duplicate measure: for every filter, the largest absolute normalised correlation with
another
filter shifted by at least one pixel (zero-padded), ``max_{j != i, s != 0} |<f_i, shift_s f_j>|``;
the script prints its mean and the number of filters whose best shifted match exceeds 0.8.
Saves both filter sets side by side to ``examples/output/``.

Run ``python examples/plot_conv_filters.py`` (``--quick`` or ``SPARSECODE_QUICK=1`` for a smoke
run).
"""

# %%
import argparse
import os
import pathlib
import time
import warnings

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from scipy.ndimage import gaussian_filter
from sklearn.datasets import load_sample_images
from sklearn.exceptions import ConvergenceWarning
from sklearn.feature_extraction.image import extract_patches_2d

from estimators import ConvSparseAutoencoder, DictionaryLearning

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[1])
parser.add_argument("--quick", action="store_true", help="fewer crops and passes, for a smoke run")
parser.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
args = parser.parse_args()
quick = args.quick or os.environ.get("SPARSECODE_QUICK") == "1"
out_dir = pathlib.Path(__file__).parent / "output"
out_dir.mkdir(exist_ok=True)

# %%
# Data: china/flower in grey at half resolution with local contrast normalisation (as the paper's
# Berkeley images): subtract a Gaussian-weighted local mean, divide by the local standard deviation.
size, kernel, n_filters = 24, 7, 16
n_crops = 100 if quick else 256
rng = np.random.RandomState(0)


def local_contrast_normalize(img: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    centred = img - gaussian_filter(img, sigma)
    local_std = np.sqrt(gaussian_filter(centred**2, sigma))
    return centred / np.maximum(local_std, local_std.mean())


images = [
    local_contrast_normalize(img.mean(2)[::2, ::2] / 255.0) for img in load_sample_images().images
]
crops = []
for i in range(n_crops):
    img = images[i % 2]
    r, c = rng.randint(img.shape[0] - size), rng.randint(img.shape[1] - size)
    crop = img[r : r + size, c : c + size]
    crops.append((crop - crop.mean()) / (crop.std() + 1e-3))
crops = np.stack(crops)
print(
    f"{n_crops} crops of {size}x{size}; learning {n_filters} filters of {kernel}x{kernel} each way."
)

# %%
# Convolutional PSD on whole crops.
t = time.perf_counter()
conv = ConvSparseAutoencoder(
    n_components=n_filters,
    kernel_size=kernel,
    alpha=0.3,
    max_iter=4 if quick else 12,
    batch_size=32,
    learning_rate=2e-2,
    inference_max_iter=40,
    random_state=0,
    device=args.device,
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    conv.fit(crops)
conv_filters = conv.components_[:, 0]
print(
    f"ConvSparseAutoencoder: {conv.n_iter_} passes in {time.perf_counter() - t:.1f} s, "
    f"energy {conv.loss_curve_[0]:.2f} -> {conv.loss_curve_[-1]:.2f} per crop."
)

# %%
# Patch-based dictionary learning on all kinds of 7x7 patches of the same crops.
patches = np.concatenate(
    [
        extract_patches_2d(c, (kernel, kernel), max_patches=40, random_state=i)
        for i, c in enumerate(crops)
    ]
).reshape(-1, kernel * kernel)
patches -= patches.mean(1, keepdims=True)
t = time.perf_counter()
dico = DictionaryLearning(
    n_components=n_filters,
    alpha=0.3,
    max_iter=2 if quick else 10,
    batch_size=256,
    random_state=0,
    device=args.device,
)
with warnings.catch_warnings():
    warnings.simplefilter("ignore", ConvergenceWarning)
    dico.fit(patches)
patch_filters = dico.components_.reshape(-1, kernel, kernel)
print(f"DictionaryLearning: {len(patches)} patches in {time.perf_counter() - t:.1f} s.")


# %%
# The shifted-duplicate measure.
def best_shifted_match(filters: np.ndarray) -> np.ndarray:
    """Per filter: max over other filters j, shifts s != 0 of |<f_i, shift_s f_j>| / norms."""
    f = torch.as_tensor(
        filters / np.linalg.norm(filters.reshape(len(filters), -1), axis=1)[:, None, None]
    )
    k = f.shape[-1]
    corr = F.conv2d(f[:, None], f[:, None], padding=k - 1).abs()  # (i, j, shifts), zero-padded
    corr[:, :, k - 1, k - 1] = 0  # drop the zero shift
    corr[torch.arange(len(f)), torch.arange(len(f))] = 0  # and each filter against itself
    return corr.flatten(1).amax(1).numpy()


scores = {
    "convolutional (ConvPSD)": best_shifted_match(conv_filters),
    "patch-based (DictionaryLearning)": best_shifted_match(patch_filters),
    "random Gaussian filters (reference)": best_shifted_match(rng.randn(n_filters, kernel, kernel)),
}
for name, s in scores.items():
    print(
        f"{name:<36} mean best shifted match {s.mean():.3f}; filters with a shifted copy (> 0.8): "
        f"{int((s > 0.8).sum())} of {len(s)}"
    )

# %%
# Figure: both filter sets, each filter titled with its best shifted match.
fig, axes = plt.subplots(4, 9, figsize=(11, 5))
for ax in axes.ravel():
    ax.axis("off")
for col0, (name, filters) in zip(
    (0, 5),
    (
        ("convolutional (ConvPSD)", conv_filters),
        ("patch-based (DictionaryLearning)", patch_filters),
    ),
):
    s = scores[name]
    for k in range(n_filters):
        ax = axes[k // 4, col0 + k % 4]
        ax.imshow(filters[k], cmap="gray", interpolation="nearest")
        ax.set_title(f"{s[k]:.2f}", fontsize=7)
    fig.text(0.13 + 0.43 * (col0 > 0), 0.935, f"{name}: mean {s.mean():.2f}", fontsize=9)
fig.suptitle(
    "7x7 filters learned on the sample images; numbers: best match with another filter shifted by "
    ">= 1 pixel",
    fontsize=10,
    y=0.99,
)
path = out_dir / "conv_filters.png"
fig.savefig(path, dpi=90)
print(f"saved {path}")
