"""Dictionary-learning benchmark: one pass of online learning of 256 atoms on 20,000 8x8 patches.

Run ``python benchmarks/bench_dictionary.py [--device cuda] [--scalings unit standard whitened raw]``.
sparsecode's :class:`estimators.DictionaryLearning`, scikit-learn's
``MiniBatchDictionaryLearning(fit_algorithm="cd")`` and SPAMS' ``trainDL`` all run the same number of
minibatch steps of the same size (one pass, no early stopping) on patches of ``china.jpg``. Each learned
dictionary is then scored by the mean lasso energy of exact codes (sparsecode's solver run to a relative
duality gap of 1e-9 in float64, the same for every method) of held-out patches of ``flower.jpg``, prepared
the same way. Prints times, the ratio ``time(sparsecode) / time(peer)`` and the energies, per scaling:

- ``unit``: centred, unit-norm patches;
- ``standard``: mean 0 and standard deviation 1 per patch (norm 8);
- ``whitened``: ZCA whitening learned on the training patches (``_common.patches_scaled``);
- ``raw``: the grey pixels in [0, 1], neither centred nor scaled.

The penalty is ``--alpha`` times the contrast of the training patches, the root mean square norm of the
patches less their own means (their norm, except the raw pixels' mean brightness that one atom codes), so
that 0.1 gives 7-9% non-zero codes on every scaling; ``--fixed-alpha`` uses ``--alpha`` as given.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import torch
from _common import fastest, import_spams, mean_energy, parser, patches, patches_scaled, report
from threadpoolctl import threadpool_limits

from estimators import DictionaryLearning
from sparsecode.device import resolve_device
from sparsecode.solvers import sparse_encode

SCALINGS = ("unit", "standard", "whitened", "raw")
INF = float("inf")  # fastest(): exactly --repeat runs


def exact_codes(X: np.ndarray, D: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """``X`` and its exact lasso codes in the dictionary ``D`` (rows are atoms), both float64."""
    X, D = X.astype(np.float64), D.astype(np.float64)
    return X, sparse_encode(X, D, alpha=alpha, tol=1e-9, max_iter=100000)


def scaled_patches(scaling: str, n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """Training patches of ``china.jpg`` and held-out patches of ``flower.jpg``, both as ``scaling``
    (a whitening is learned on the training patches only)."""
    if scaling == "raw":
        return patches(n_train, raw=True), patches(n_test, image="flower.jpg", raw=True)
    train, test = patches(n_train), patches(n_test, image="flower.jpg")
    return patches_scaled(train, scaling, train), patches_scaled(test, scaling, train)


def one_scaling(scaling: str, args, device: torch.device, spams) -> None:
    """Learn on one scaling with every method and print the table."""
    X, X_test = scaled_patches(scaling, args.n_samples, args.n_test)
    X = X.astype(args.dtype)
    contrast = X.astype(np.float64) - X.mean(1, keepdims=True)
    rms = float(np.sqrt((contrast**2).sum(1).mean()))
    alpha = args.alpha if args.fixed_alpha else args.alpha * rms
    n_steps = math.ceil(X.shape[0] / args.batch_size)
    K, bs = args.n_components, args.batch_size
    rows, sparsity = [], {}

    def score(name: str, t: float, D: np.ndarray) -> None:
        Xs, Z = exact_codes(X_test, D, alpha)
        rows.append((name, t, mean_energy(Xs, Z, D, alpha)))
        sparsity[name] = np.count_nonzero(Z) / Z.size

    est = DictionaryLearning(n_components=K, alpha=alpha, max_iter=1, batch_size=bs, random_state=0,
                             tol=0, max_no_improvement=None, device=str(device))
    t, est = fastest(lambda: est.fit(X), INF, args.repeat, device)
    score("sparsecode", t, est.components_)
    with threadpool_limits(args.threads), warnings.catch_warnings():
        from sklearn.decomposition import MiniBatchDictionaryLearning
        from sklearn.exceptions import ConvergenceWarning
        warnings.simplefilter("ignore", ConvergenceWarning)  # its inner lasso_cd budget, by design
        if "sklearn" not in args.skip:
            sk = MiniBatchDictionaryLearning(n_components=K, alpha=alpha, max_iter=1, batch_size=bs,
                                             fit_algorithm="cd", random_state=0, tol=0,
                                             max_no_improvement=None)
            t, sk = fastest(lambda: sk.fit(X), INF, args.repeat)
            score("sklearn MiniBatchDL cd", t, sk.components_)
    if spams is not None:
        Xf = np.asfortranarray(X.T, dtype=np.float64)
        t, Ds = fastest(lambda: spams.trainDL(Xf, K=K, lambda1=alpha, mode=2, batchsize=bs, iter=n_steps,
                                              numThreads=args.threads, verbose=False), INF, args.repeat)
        score("spams.trainDL", t, np.ascontiguousarray(Ds.T))
    print(f"\n[{scaling}] {X.shape[0]} training patches (contrast {rms:.3g}), {X_test.shape[0]} held out, "
          f"alpha={alpha:.4g}; non-zeros of the held-out codes: "
          + ", ".join(f"{name} {100 * s:.1f}%" for name, s in sparsity.items()))
    report(rows)


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--n-test", type=int, default=5000, help="held-out patches of flower.jpg")
    p.add_argument("--scalings", nargs="*", default=["unit"], choices=SCALINGS,
                   help="input scalings, each its own table (default: unit)")
    p.add_argument("--repeat", type=int, default=1, help="time every fit this many times, keep the fastest")
    p.add_argument("--fixed-alpha", action="store_true",
                   help="use --alpha as given on every scaling, not scaled by the patches' RMS norm")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="precision given to sparsecode and scikit-learn (SPAMS computes in float64)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    print(f"Learning {args.n_components} atoms from {args.n_samples} patches (8x8), batch {args.batch_size}, "
          f"one pass = {math.ceil(args.n_samples / args.batch_size)} steps, {args.threads} threads, "
          f"{args.dtype}, sparsecode on {device}; energies of exact codes of held-out patches.")
    spams = None if "spams" in args.skip else import_spams()
    for scaling in args.scalings:
        one_scaling(scaling, args, device, spams)


if __name__ == "__main__":
    main()
