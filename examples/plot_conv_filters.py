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

Shifted-duplicate measure: for every filter, the largest absolute normalised cross-correlation
with another filter shifted by 1 to 3 pixels (zero-padded),
``max_{j != i, 1 <= |s|_inf <= 3} |<f_i, shift_s f_j>| / (|f_i| |f_j|)``. Smooth filters
correlate more at every shift, so each set is compared with its own null: phase-randomised copies
of its filters (same amplitude spectra, unrelated phases). The script prints the medians, the excess
over the null, and plots the distributions beside both filter sets (``examples/output/``), whatever
they show.

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
# Data: china/flower in grey at half resolution (blurred before subsampling: plain ``[::2, ::2]``
# aliases the JPEG texture into checkerboards that the filters then copy) with local contrast
# normalisation (as the paper's Berkeley images): subtract a Gaussian-weighted local mean, divide by
# the local standard deviation.
size, kernel, n_filters = 24, 7, 16
n_crops = 100 if quick else 256
rng = np.random.RandomState(0)


def local_contrast_normalize(img: np.ndarray, sigma: float = 2.0) -> np.ndarray:
    centred = img - gaussian_filter(img, sigma)
    local_std = np.sqrt(gaussian_filter(centred**2, sigma))
    return centred / np.maximum(local_std, local_std.mean())


images = [
    local_contrast_normalize(gaussian_filter(img.mean(2) / 255.0, 1.0)[::2, ::2])
    for img in load_sample_images().images
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
    # alpha=2 on the unit-variance crops: sparse enough maps that the kernels must carry structure
    # (at 0.3 nearly any 16 kernels reconstruct the crops). SGD with momentum, as the paper's
    # stochastic gradient: Adam's per-element steps, followed by the unit-norm projection, drive
    # the kernels to saturated +-c (binary, noise-like) patterns. With plain gradient steps the
    # encoder's rate is the kernels' over the Lipschitz constant L (about 77 here), so 5e-2 moves
    # the unit-norm kernels while the encoder steps at about 6e-4 (it diverges near 3e-3).
    alpha=2.0,
    optimizer="momentum",
    learning_rate=5e-2,
    max_iter=3 if quick else 10,
    batch_size=16,
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


def low_frequency_share(filters: np.ndarray) -> np.ndarray:
    """Per filter: share of its energy at spatial frequencies up to 1/4 cycle per pixel."""
    power = np.abs(np.fft.fft2(filters, s=(16, 16))) ** 2
    freq = np.fft.fftfreq(16)
    low = np.hypot(freq[:, None], freq[None]) <= 0.25
    return power[:, low].sum(1) / power.reshape(len(filters), -1).sum(1)


white_share = np.median(low_frequency_share(rng.randn(1000, kernel, kernel)))
print(
    f"smoothness (median share of energy below 1/4 cycle/px; white noise {white_share:.2f}): "
    f"conv {np.median(low_frequency_share(conv_filters)):.2f}, "
    f"patch {np.median(low_frequency_share(patch_filters)):.2f}"
)


# %%
# The shifted-duplicate measure, against a null that keeps each filter's smoothness.
max_shift = 3


def best_shifted_match(filters: np.ndarray) -> np.ndarray:
    """Per filter: max over other filters j and shifts 1 <= |s|_inf <= max_shift of the
    normalised cross-correlation |<f_i, shift_s f_j>| / (|f_i| |f_j|) (zero-padded shifts)."""
    f = torch.as_tensor(filters / np.linalg.norm(filters.reshape(len(filters), -1), axis=1)[:, None, None])
    corr = F.conv2d(f[:, None], f[:, None], padding=max_shift).abs()  # (i, j, shifts)
    corr[:, :, max_shift, max_shift] = 0  # drop the zero shift
    corr[torch.arange(len(f)), torch.arange(len(f))] = 0  # and each filter against itself
    return corr.flatten(1).amax(1).numpy()


def phase_randomized(filters: np.ndarray, rs: np.random.RandomState) -> np.ndarray:
    """Random filters with the amplitude spectrum of each filter and random phases: as smooth
    (same autocorrelation) as the filters, but unrelated to one another."""
    amplitude = np.abs(np.fft.rfft2(filters))
    phase = np.fft.rfft2(rs.randn(*filters.shape))
    return np.fft.irfft2(amplitude * phase / np.abs(phase), s=filters.shape[-2:])


n_null = 10 if quick else 50
sets = {"convolutional (ConvPSD)": conv_filters, "patch-based (DictionaryLearning)": patch_filters}
scores = {name: best_shifted_match(f) for name, f in sets.items()}
null_draws = {
    name: np.stack([best_shifted_match(phase_randomized(f, rng)) for _ in range(n_null)])
    for name, f in sets.items()
}
nulls = {name: draws.ravel() for name, draws in null_draws.items()}
white = np.concatenate(
    [best_shifted_match(rng.randn(n_filters, kernel, kernel)) for _ in range(n_null)]
)
print(
    f"best match of each filter with another filter shifted by 1 to {max_shift} pixels "
    f"(|normalised cross-correlation|); null: {n_null} phase-randomised copies of the same set"
)
print(
    f"{'filters':<34}{'median':>8}{'mean':>7}{'> 0.7':>7}{'null median':>13}{'excess':>8}"
    f"{'null draws >= it':>18}"
)
for name, s in scores.items():
    null = nulls[name]
    # the share of null sets whose median is at least the observed one (a one-sided p-value)
    share = float(np.mean(np.median(null_draws[name], axis=1) >= np.median(s)))
    print(
        f"{name:<34}{np.median(s):>8.3f}{s.mean():>7.3f}{int((s > 0.7).sum()):>4} / {len(s)}"
        f"{np.median(null):>10.3f}{np.median(s) - np.median(null):>+8.3f}{share:>18.2f}"
    )
print(f"{'white Gaussian filters':<34}{np.median(white):>8.3f}{white.mean():>7.3f}")
excess = {name: np.median(s) - np.median(nulls[name]) for name, s in scores.items()}
conv_name, patch_name = list(sets)
verdict = "fewer" if excess[conv_name] < excess[patch_name] else "NOT fewer"
print(
    f"excess of shifted similarity over the null: conv {excess[conv_name]:+.3f}, "
    f"patch {excess[patch_name]:+.3f}: the convolutional set has {verdict} shifted copies."
)

# %%
# Figure: both filter sets, each filter titled with its best shifted match, and the distributions.
fig = plt.figure(figsize=(14, 5))
grid = fig.add_gridspec(4, 13)
for col0, (name, filters) in zip((0, 4), sets.items()):
    s = scores[name]
    for k in range(n_filters):
        ax = fig.add_subplot(grid[k // 4, col0 + k % 4])
        ax.imshow(filters[k], cmap="gray", interpolation="nearest")
        ax.set_title(f"{s[k]:.2f}", fontsize=7)
        ax.axis("off")
    fig.text(0.03 + 0.3 * (col0 > 0), 0.93, f"{name}", fontsize=9)
ax = fig.add_subplot(grid[:, 9:])
bins = np.linspace(0, 1, 41)
for (name, s), color in zip(scores.items(), ("C0", "C3")):
    ax.hist(nulls[name], bins, density=True, histtype="step", ls="--", color=color,
            label=f"null of the {name.split()[0]} set")
    ax.hist(s, bins, density=True, alpha=0.4, color=color, label=f"{name} (median {np.median(s):.2f})")
ax.hist(white, bins, density=True, histtype="step", color="gray", label="white Gaussian filters")
ax.set_xlabel(f"best |correlation| with another filter shifted by 1-{max_shift} px")
ax.legend(fontsize=7, loc="upper left")
fig.suptitle(
    f"{kernel}x{kernel} filters learned on the sample images: shifted copies "
    f"(excess over a phase-randomised null: conv {excess[conv_name]:+.2f}, "
    f"patch {excess[patch_name]:+.2f})",
    fontsize=10,
)
path = out_dir / "conv_filters.png"
fig.savefig(path, dpi=90)
print(f"saved {path}")
