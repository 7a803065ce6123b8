"""
=========================================================
Image denoising with a learned dictionary (the main demo)
=========================================================

Learn a dictionary of 256 atoms from 8x8 patches of the clean left half of a photograph that ships
with scikit-learn, then denoise the noisy right half: code every overlapping noisy patch with the lasso
(``0.5*||x - z D||^2 + alpha*||z||_1``), rebuild the patches from the codes and average them back into
an image. Saves the atoms and the before/after images to ``examples/output/``.

Run ``python examples/plot_image_denoising.py`` (``--quick`` for a smaller, faster run).
"""

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from _setup import example_setup, save_figure
from scipy.ndimage import gaussian_filter
from sklearn.datasets import load_sample_image
from sklearn.feature_extraction.image import extract_patches_2d, reconstruct_from_patches_2d

from estimators import DictionaryLearning
from sparsecode import build_kernels

quick, device, out_dir = example_setup(__doc__, device=True)

# %%
# Data: china.jpg in grey levels, downsampled, with Gaussian noise on its right half.
image = load_sample_image("china.jpg").mean(axis=2) / 255.0
# downsample with a Gaussian anti-aliasing filter (sigma = step / 2): plain subsampling, and even block
# averaging, fold the photograph's finest texture into pixel-period checkerboards that the dictionary
# would then learn as atoms
step = 4 if quick else 2
image = gaussian_filter(image, sigma=step / 2)[::step, ::step].astype(np.float32)
height, width = image.shape
rng = np.random.RandomState(0)
noisy = image.copy()
noisy[:, width // 2:] += 0.075 * rng.randn(height, width - width // 2).astype(np.float32)
print(f"Image {height}x{width}; noise std 0.075 on the right half")

patch_size = (8, 8)
n_atoms = 64 if quick else 256
clean_patches = extract_patches_2d(image[:, : width // 2], patch_size, max_patches=20000, random_state=0)
data = clean_patches.reshape(len(clean_patches), -1)
mean = data.mean(axis=1, keepdims=True)
data = data - mean
scale = data.std()
data /= scale
print(f"Learning {n_atoms} atoms from {len(data)} clean 8x8 patches")

# %%
# Learn the dictionary: one line of progress per pass (time and the mean minibatch cost), a fixed number of passes
# (the default stopping rules would end it in the second pass, before the atoms settle into clean edges).
# The compiled CPU kernels are built first, so that their one-time build is not counted as training.
build_kernels.main([])
t0 = time.perf_counter()
dico = DictionaryLearning(n_components=n_atoms, alpha=1.0, max_iter=2 if quick else 5, tol=0,
                          max_no_improvement=None, batch_size=256, random_state=0, verbose=1, device=device)
dico.fit(data)
print(f"Done in {time.perf_counter() - t0:.1f} s ({dico.n_steps_} minibatch steps)")

# Show the atoms, the most used (largest summed |code| over the training patches) first.
usage = np.abs(dico.transform(data)).sum(axis=0)
side = int(np.sqrt(n_atoms))
fig, axes = plt.subplots(side, side, figsize=(8, 8))
for atom, ax in zip(dico.components_[np.argsort(-usage)], axes.ravel()):
    ax.imshow(atom.reshape(patch_size), cmap="gray", interpolation="nearest")
    ax.set_axis_off()
fig.suptitle(f"{n_atoms} atoms learned from 8x8 patches, most used first")
save_figure(fig, out_dir / "dictionary_atoms.png", dpi=100)

# %%
# Denoise the right half: code every overlapping patch, reconstruct, average.
t0 = time.perf_counter()
right = noisy[:, width // 2:]
patches = extract_patches_2d(right, patch_size)
flat = patches.reshape(len(patches), -1)
means = flat.mean(axis=1, keepdims=True)
dico.set_params(transform_alpha=0.5)
code = dico.transform((flat - means) / scale)
restored = (dico.inverse_transform(code) * scale + means).reshape(patches.shape)
denoised = noisy.copy()
denoised[:, width // 2:] = reconstruct_from_patches_2d(restored, right.shape)
print(f"Coded {len(flat)} patches in {time.perf_counter() - t0:.1f} s; "
      f"{np.mean(code != 0) * n_atoms:.1f} non-zeros per patch on average")


def psnr(a, b):
    return 10 * np.log10(1.0 / np.mean((a - b) ** 2))


truth = image[:, width // 2:]
print(f"PSNR of the right half: noisy {psnr(noisy[:, width // 2:], truth):.2f} dB -> "
      f"denoised {psnr(denoised[:, width // 2:], truth):.2f} dB")

fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
for ax, img, title in zip(axes, [image, noisy, denoised], ["original", "noisy (right half)", "denoised"]):
    ax.imshow(img, cmap="gray", vmin=0, vmax=1)
    ax.set_title(title)
    ax.set_axis_off()
fig.tight_layout()
save_figure(fig, out_dir / "denoising.png", dpi=100)
