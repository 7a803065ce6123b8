"""
=====================================================================
Convolutional versus patch-based filters: fewer shifted duplicates
=====================================================================

Learns overcomplete sets of 7x7 filters (64 for 49-dimensional patches, as in the paper's figure of
patch versus convolutional filters) on whole crops of scikit-learn's sample images with
:class:`estimators.ConvSparseAutoencoder` (convolutional PSD, Kavukcuoglu et al. 2010), and as many
atoms on 7x7 patches of the same crops with :class:`estimators.DictionaryLearning`. A patch
dictionary must explain every patch on its own, so once it has more atoms than the patch has
pixels it can spend them on shifted copies of the same edge; a convolutional one codes all shifts
with the same kernel. An undercomplete set of 16 is learned too (full run only), to see whether
the difference needs an overcomplete set.

Shifted copies: for every filter, its closest relative is the other filter of the same set, and
the shift of 0 to 3 pixels (zero-padded), of largest absolute normalised cross-correlation. The
filter is a *shifted copy* when that relative matches it at 0.7 or more at a nonzero shift: its
nearest neighbour in the set is another filter moved by a few pixels, not an aligned one. The
script prints, per set size, how many filters of each set are shifted copies, how many would be in
phase-randomised copies of the set (same number, same amplitude spectra, unrelated phases: smooth
filters match at every shift by chance), and the conv - patch difference of the shares with a
bootstrap interval over the filters. The figure shows the 64-filter sets, shifted copies titled in
red, and the share of shifted copies against the match threshold for every set size. The patch
dictionary uses the conv model's ``alpha`` so that only patches versus convolution differ.

What it shows (full run): nearly every patch filter's closest relative is a shifted one (the
patch dictionary tiles positions with the same edge), against about half of the convolutional
filters. At 0.7, 53 of 64 patch filters are shifted copies (18.6 in its null) against 22 of 64
convolutional ones (12.9 in its null); with 16 filters, 13 against 4 (nulls 4.7 and 1.8). The
conv - patch difference of the shares is -0.48 (90% interval [-0.59, -0.34]) with 64 filters and
-0.56 ([-0.81, -0.31]) with 16. The convolutional set's redundancy is of another kind: 20 of its
64 filters have an aligned match of 0.7 or more (the same orientation at slightly different
widths or phases), against 1 in the patch set.

Run ``python examples/plot_conv_filters.py`` (``--quick`` or ``SPARSECODE_QUICK=1`` for a smoke
run: 64 filters only, fewer crops and passes).
"""

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from _setup import example_setup, save_figure
from scipy.ndimage import gaussian_filter
from sklearn.datasets import load_sample_images
from sklearn.feature_extraction.image import extract_patches_2d

from estimators import ConvSparseAutoencoder, DictionaryLearning

quick, device, out_dir = example_setup(__doc__, device=True)

# %%
# Data: china/flower in grey at half resolution (blurred before subsampling: plain ``[::2, ::2]``
# aliases the JPEG texture into checkerboards that the filters then copy) with local contrast
# normalisation (as the paper's Berkeley images): subtract a Gaussian-weighted local mean, divide by
# the local standard deviation.
size, kernel = 24, 7
set_sizes = (64,) if quick else (16, 64)
n_crops = 48 if quick else 128
conv_passes = 3 if quick else 8
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
patches = np.concatenate(
    [
        extract_patches_2d(c, (kernel, kernel), max_patches=60, random_state=i)
        for i, c in enumerate(crops)
    ]
).reshape(-1, kernel * kernel)
patches -= patches.mean(1, keepdims=True)
print(
    f"{n_crops} crops of {size}x{size} ({len(patches)} patches of {kernel}x{kernel}); learning "
    f"{' and '.join(map(str, set_sizes))} filters of {kernel}x{kernel} each way "
    f"({kernel * kernel}-dimensional patches)."
)


# %%
# Convolutional PSD on whole crops, patch-based dictionary learning on the crops' patches.
def learn_filters(n_filters: int) -> dict[str, np.ndarray]:
    """The convolutional and the patch-based set of ``n_filters`` kernels, (n_filters, 7, 7)."""
    t = time.perf_counter()
    conv = ConvSparseAutoencoder(
        n_components=n_filters,
        kernel_size=kernel,
        # alpha=2 on the unit-variance crops: sparse enough maps that the kernels must carry
        # structure (at 0.3 nearly any set of kernels reconstructs the crops). SGD with momentum,
        # as the paper's stochastic gradient: Adam's per-element steps, followed by the unit-norm
        # projection, drive the kernels to saturated +-c (binary, noise-like) patterns. With plain
        # gradient steps the encoder's rate is the kernels' over the Lipschitz constant L (about
        # 77 for 16 kernels), so 5e-2 moves the unit-norm kernels while the encoder steps slowly.
        alpha=2.0,
        optimizer="momentum",
        learning_rate=5e-2,
        max_iter=conv_passes,
        batch_size=16,
        inference_max_iter=40,
        tol=0,  # a fixed number of passes
        random_state=0,
        device=device,
    )
    conv.fit(crops)
    print(
        f"  ConvSparseAutoencoder({n_filters}): {conv.n_iter_} passes in "
        f"{time.perf_counter() - t:.1f} s, energy {conv.loss_curve_[0]:.2f} -> "
        f"{conv.loss_curve_[-1]:.2f} per crop."
    )
    t = time.perf_counter()
    dico = DictionaryLearning(
        n_components=n_filters,
        # the conv model's alpha (same energy per code coefficient, so only patches versus
        # convolution differ; at 0.3 a 64-atom dictionary keeps noise-like atoms), and a fixed
        # number of passes (the default stopping rules end it after 2-4 noisy passes)
        alpha=2.0,
        max_iter=4 if quick else 10,
        tol=0.0,
        max_no_improvement=None,
        batch_size=256,
        random_state=0,
        device=device,
    )
    dico.fit(patches)
    print(f"  DictionaryLearning({n_filters}): {dico.n_iter_} passes in {time.perf_counter() - t:.1f} s.")
    return {
        "convolutional (ConvPSD)": conv.components_[:, 0],
        "patch-based (DictionaryLearning)": dico.components_.reshape(-1, kernel, kernel),
    }


def low_frequency_share(filters: np.ndarray) -> np.ndarray:
    """Per filter: share of its energy at spatial frequencies up to 1/4 cycle per pixel."""
    power = np.abs(np.fft.fft2(filters, s=(16, 16))) ** 2
    freq = np.fft.fftfreq(16)
    low = np.hypot(freq[:, None], freq[None]) <= 0.25
    return power[:, low].sum(1) / power.reshape(len(filters), -1).sum(1)


# %%
# Shifted copies: is a filter's closest relative in its set another filter moved by a few pixels?
max_shift, strong = 3, 0.7


def closest_relative(filters: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per filter: the largest |normalised cross-correlation| with another filter of the set at any
    shift ``|s|_inf <= max_shift`` (zero-padded), and the size ``|s|_inf`` of that shift."""
    f = torch.as_tensor(filters / np.linalg.norm(filters.reshape(len(filters), -1), axis=1)[:, None, None])
    corr = F.conv2d(f[:, None], f[:, None], padding=max_shift).abs()  # (i, j, dy, dx)
    corr[torch.arange(len(f)), torch.arange(len(f))] = 0  # not the filter itself
    value, where = corr.flatten(1).max(1)
    side = 2 * max_shift + 1
    dy, dx = (where % side**2) // side - max_shift, where % side - max_shift
    return value.numpy(), torch.maximum(dy.abs(), dx.abs()).numpy()


def shifted_copies(value: np.ndarray, shift: np.ndarray, threshold) -> np.ndarray:
    """Which filters are shifted copies: closest relative (``closest_relative``) at a nonzero
    shift, matching at least ``threshold`` (a scalar, or an array for one row per threshold)."""
    return (value >= np.asarray(threshold)[..., None]) & (shift > 0)


def shifted_copy_share(filters: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """Share of filters that are shifted copies at each threshold."""
    return shifted_copies(*closest_relative(filters), thresholds).mean(1)


def phase_randomized(filters: np.ndarray, rs: np.random.RandomState) -> np.ndarray:
    """Random filters with the amplitude spectrum of each filter and random phases: as smooth
    (same autocorrelation) as the filters, but unrelated to one another."""
    amplitude = np.abs(np.fft.rfft2(filters))
    phase = np.fft.rfft2(rs.randn(*filters.shape))
    return np.fft.irfft2(amplitude * phase / np.abs(phase), s=filters.shape[-2:])


thresholds = np.linspace(0.4, 0.95, 23)
n_null, n_boot = (10, 200) if quick else (50, 2000)
white_share = np.median(low_frequency_share(rng.randn(1000, kernel, kernel)))
results = {}  # n_filters -> (sets, closest relatives, shifted copies, share curves, null curves)
for n_filters in set_sizes:
    completeness = "overcomplete" if n_filters > kernel * kernel else "undercomplete"
    print(f"\n{n_filters} filters ({completeness} for {kernel * kernel}-dimensional patches):")
    sets = learn_filters(n_filters)
    print(
        f"  smoothness (median share of energy below 1/4 cycle/px; white noise {white_share:.2f}): "
        + ", ".join(f"{name.split()[0]} {np.median(low_frequency_share(f)):.2f}" for name, f in sets.items())
    )
    relatives = {name: closest_relative(f) for name, f in sets.items()}
    copies = {name: shifted_copies(*rel, strong) for name, rel in relatives.items()}
    curves = {name: shifted_copies(*rel, thresholds).mean(1) for name, rel in relatives.items()}
    nulls = {
        name: np.mean([shifted_copy_share(phase_randomized(f, rng), thresholds) for _ in range(n_null)], 0)
        for name, f in sets.items()
    }
    print(
        f"  closest relative of each filter: another filter of the set at a shift of 0 to {max_shift} px "
        f"(|normalised cross-correlation|); a shifted copy if it matches >= {strong} at a nonzero shift, "
        "an aligned match if at zero shift"
    )
    print(
        f"  {'filters':<34}{'shifted copies':>15}{'null copies':>13}{'aligned matches':>17}"
        f"{'relative shifted':>18}{'median match':>14}"
    )
    at = np.argmin(np.abs(thresholds - strong))
    for name, (value, shift) in relatives.items():
        print(
            f"  {name:<34}{int(copies[name].sum()):>8} / {n_filters:<5}{nulls[name][at] * n_filters:>13.1f}"
            f"{int(((value >= strong) & (shift == 0)).sum()):>17}{np.mean(shift > 0):>18.2f}"
            f"{np.median(value):>14.3f}"
        )
    conv_name, patch_name = list(sets)
    # how much the difference of the shares moves when the filters of each set are resampled
    # (approximate: one filter's closest relative depends on the others)
    boot = [
        rng.choice(copies[conv_name], n_filters).mean() - rng.choice(copies[patch_name], n_filters).mean()
        for _ in range(n_boot)
    ]
    low, high = np.percentile(boot, [5, 95])
    difference = copies[conv_name].mean() - copies[patch_name].mean()
    verdict = "fewer" if high < 0 else "more" if low > 0 else "about as many"
    print(
        f"  conv - patch share of shifted copies: {difference:+.2f} (90% bootstrap interval over filters "
        f"[{low:+.2f}, {high:+.2f}]): with {n_filters} filters the convolutional set has {verdict} "
        "shifted copies."
    )
    results[n_filters] = (sets, relatives, copies, curves, nulls)

# %%
# Figure: the largest sets (each filter titled with its closest match, red when that is a shifted
# copy) and the share of shifted copies against the match threshold, for every set size.
n_filters = max(results)
sets, relatives, copies, _, _ = results[n_filters]
side = int(np.ceil(np.sqrt(n_filters)))
fig = plt.figure(figsize=(16, 6.5))
grid = fig.add_gridspec(side, 2 * side + 1 + side, left=0.02, right=0.98, top=0.85, bottom=0.08)
for col0, (name, filters) in zip((0, side), sets.items()):
    value, copy = relatives[name][0], copies[name]
    for k in range(n_filters):
        ax = fig.add_subplot(grid[k // side, col0 + k % side])
        ax.imshow(filters[k], cmap="gray", interpolation="nearest")
        ax.set_title(f"{value[k]:.2f}", fontsize=6, pad=1, color="C3" if copy[k] else "k")
        ax.axis("off")
        if k == 0:
            fig.text(ax.get_position().x0, 0.9, f"{name}: {int(copy.sum())} shifted copies (red)",
                     fontsize=9)
ax = fig.add_subplot(grid[1:-1, 2 * side + 2 :])
for n, (_, _, _, curves, nulls) in results.items():
    style = "-" if n == n_filters else ":"
    for (name, curve), color in zip(curves.items(), ("C0", "C3")):
        ax.plot(thresholds, curve, style, color=color, label=f"{name.split()[0]}, {n} filters")
        ax.plot(thresholds, nulls[name], style, color=color, alpha=0.35, lw=1)
ax.axvline(strong, color="k", lw=0.6, ls="--")
ax.set_xlabel(f"match threshold (|correlation| with a filter shifted by 1-{max_shift} px)")
ax.set_ylabel("share of filters that are shifted copies")
ax.set_title("faint: phase-randomised nulls", fontsize=8)
ax.legend(fontsize=7)
fig.suptitle(
    f"{n_filters} {kernel}x{kernel} filters learned on the sample images: a filter is a shifted copy when "
    f"its closest relative is another filter moved by 1-{max_shift} px (|correlation| >= {strong})",
    fontsize=10,
)
save_figure(fig, out_dir / "conv_filters.png", dpi=90)
