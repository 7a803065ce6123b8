"""
A topographic map of filters learned from image patches
=======================================================

Kavukcuoglu, Ranzato, Fergus & LeCun (CVPR 2009) arrange the code units of a predictive sparse
decomposition on a 2-D map that wraps around (a torus) and penalise, instead of ``|z_j|``, the
pooled
values ``v_i = sqrt(sum_{j in P_i} w_j z_j^2)`` over overlapping Gaussian-weighted windows ``P_i``.
Units that fire together then share pools cheaply, so neighbouring units learn similar filters.
:class:`estimators.GroupSparseAutoencoder` with ``topography=(6, 6)`` and 3x3 pools learns such a
map
from 8x8 patches of the two sample images (contrast-normalised, then ZCA-whitened on their 16
leading
directions). The script prints how alike neighbouring filters are compared with any two filters
(mean absolute cosine) as training proceeds, and saves the map and the pooled features of one patch.

Set ``SPARSECODE_QUICK=1`` (or pass ``--quick``) for a fast smoke run.
"""

# %%
import time

import matplotlib.pyplot as plt
import numpy as np
from _setup import example_setup, save_figure
from sklearn.datasets import load_sample_images
from sklearn.feature_extraction.image import extract_patches_2d
from sklearn.pipeline import make_pipeline

from estimators import ContrastNormalization, GroupSparseAutoencoder, Whitening

QUICK, _, OUT = example_setup(__doc__)
ROWS = COLS = 6
PASSES = 1 if QUICK else 8
N_PER_IMAGE = 300 if QUICK else 1500

images = [im.mean(axis=2) / 255.0 for im in load_sample_images().images]
X = np.vstack(
    [
        extract_patches_2d(im, (8, 8), max_patches=N_PER_IMAGE, random_state=i).reshape(
            N_PER_IMAGE, -1
        )
        for i, im in enumerate(images)
    ]
)
preprocess = make_pipeline(
    ContrastNormalization(regularization=0.01),
    Whitening("zca", n_components=16, regularization=0.1),
)
X = preprocess.fit_transform(X).astype(np.float32)
print(f"{len(X)} patches 8x8, contrast-normalised and ZCA-whitened (16 directions)")


def similarity(D):
    """Mean |cos| of each filter with its right and lower neighbours (torus), and over all pairs."""
    D = D / np.linalg.norm(D, axis=1, keepdims=True)
    C = np.abs(D @ D.T)
    r, c = np.divmod(np.arange(ROWS * COLS), COLS)
    right, down = r * COLS + (c + 1) % COLS, ((r + 1) % ROWS) * COLS + c
    neighbours = np.concatenate([C[np.arange(len(D)), right], C[np.arange(len(D)), down]])
    return neighbours.mean(), C[np.triu_indices(len(D), 1)].mean()


# %%
# Train one pass at a time (``warm_start``) to follow the map as it forms.
model = GroupSparseAutoencoder(
    topography=(ROWS, COLS),
    pool_size=3,
    sigma=1.5,
    alpha=1.0,
    beta=1.0,
    encoder="tanh",
    transform_output="pooled",
    max_iter=1,
    batch_size=16,
    learning_rate=3e-3,
    inference_max_iter=20,
    warm_start=True,
    tol=0,  # a fixed number of passes
    random_state=0,
    device="cpu",
)
start = time.perf_counter()
for p in range(PASSES):
    model.fit(X)
    near, anywhere = similarity(model.components_)
    print(
        f"pass {p + 1}: energy {model.loss_curve_[-1]:.3f}, "
        f"mean |cos| neighbours {near:.3f} vs all "
        f"pairs {anywhere:.3f} ({time.perf_counter() - start:.0f} s)"
    )

# %%
# The filters in pixel space, laid out on the map, and the pooled (invariant) features of one patch.
filters = model.components_ / np.abs(model.components_).max(axis=1, keepdims=True)
fig, axes = plt.subplots(1, 2, figsize=(10, 5), gridspec_kw={"width_ratios": [1.3, 1]})
tiles = np.ones((ROWS * 9 + 1, COLS * 9 + 1))
for j, f in enumerate(filters):
    r, c = divmod(j, COLS)
    tiles[1 + 9 * r : 9 * r + 9, 1 + 9 * c : 9 * c + 9] = 0.5 + 0.5 * f.reshape(8, 8)
axes[0].imshow(tiles, cmap="gray", vmin=0, vmax=1)
axes[0].set_title(f"decoder filters on the {ROWS}x{COLS} torus")
axes[0].axis("off")
pooled = model.transform(X[:1]).reshape(ROWS, COLS)
im = axes[1].imshow(pooled, cmap="viridis")
axes[1].set_title("pooled features v_i of one patch")
fig.colorbar(im, ax=axes[1], fraction=0.046)
fig.tight_layout()
save_figure(fig, OUT / "topographic_map.png", dpi=100)
