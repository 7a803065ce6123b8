"""
=============================================================
LISTA and LCoD: code error against computation (patches)
=============================================================

Gregor & LeCun (2010)'s experiment on a small scale: 10x10 patches of scikit-learn's sample images,
a 100-atom dictionary (``alpha = 0.5``), and the relative error of approximate codes against the exact
lasso codes, as a function of the multiply-adds spent per patch: ISTA and FISTA iterations, LISTA with
1 to 3 trained steps, coordinate descent (CoD) and LCoD. The full experiment (7 depths, 400 atoms, the
"FISTA iterations worth" table) is ``benchmarks/bench_lista.py``, whose functions this script reuses.
Set ``SPARSECODE_QUICK=1`` (or pass ``--quick``) for a faster smoke run.
"""

import sys

import matplotlib.pyplot as plt
import numpy as np
from _setup import REPOSITORY, example_setup, save_figure

sys.path.insert(0, str(REPOSITORY))  # the experiment is the benchmark's
from benchmarks.bench_lista import run  # noqa: E402

QUICK, _, OUT = example_setup(__doc__)

# %%
# Train the encoders and measure every curve (a subsample of patches keeps this near a minute).
settings = (
    dict(
        n_per_image=2500,
        n_test=800,
        lista_depths=[1, 2],
        lcod_depths=[5],
        max_iter=5,
        classical_iter=30,
    )
    if QUICK
    else dict(
        n_per_image=8000,
        n_test=2000,
        lista_depths=[1, 2, 3],
        lcod_depths=[5, 10],
        max_iter=30,
        classical_iter=60,
    )
)
res = run(100, device="cpu", **settings)
m, n = res["n_components"], res["n_features"]

# %%
# Error against multiply-adds per patch: ``n m`` for the first product, then ``m^2`` per
# ISTA/FISTA/LISTA step and ``m`` per coordinate step.
fig, ax = plt.subplots(figsize=(7, 4.5))
for name in ("ista", "fista"):
    k = np.array(sorted(res[name]))
    ax.loglog(n * m + (k - 1) * m * m, [res[name][i] for i in k], label=name.upper())
steps = np.array(sorted(res["cod"]))
ax.loglog(n * m + steps * m, [res["cod"][s] for s in steps], label="CoD")
T = np.array(sorted(res["lista"]))
ax.loglog(n * m + T * m * m, [res["lista"][t]["error"] for t in T], "o-", label="LISTA (T steps)")
T = np.array(sorted(res["lcod"]))
ax.loglog(n * m + T * m, [res["lcod"][t]["error"] for t in T], "s-", label="LCoD (T steps)")
ax.set_xlabel("multiply-adds per patch")
ax.set_ylabel("relative code error")
ax.set_title(f"10x10 patches, {m} atoms, alpha = 0.5")
ax.legend()
fig.tight_layout()
for t, r in res["lista"].items():
    print(f"LISTA T={t}: error {r['error']:.4f}, worth {r['fista_worth']} FISTA iterations")
for t, r in res["lcod"].items():
    print(
        f"LCoD T={t}: error {r['error']:.4f}, worth {r['cod_worth']} CoD steps ({r['ratio']:.1f}x)"
    )
save_figure(fig, OUT / "plot_lista.png", dpi=100)
