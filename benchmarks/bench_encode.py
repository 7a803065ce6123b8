"""Encoding benchmark: lasso codes of 20,000 8x8 patches in 256 atoms, side by side with the peers.

Run ``python benchmarks/bench_encode.py [--device cuda]``. sparsecode runs ``"auto"`` (the batched
homotopy) in float32 and float64, and FISTA with support polishing for comparison. The atoms are other
unit-norm patches; every
method minimises ``0.5*||x - z D||^2 + alpha*||z||_1`` per patch (scikit-learn's ``sparse_encode``
scales ``alpha`` the same way, SPAMS' ``lasso`` ``mode=2`` too). Prints each method's time, the ratio
``time(sparsecode) / time(peer)`` and the mean energy reached.
"""

from __future__ import annotations

import numpy as np
import torch
from _common import import_spams, mean_energy, parser, patches, report, timed
from threadpoolctl import threadpool_limits

from sparsecode.device import resolve_device
from sparsecode.solvers import sparse_encode


def main():
    args = parser(__doc__.splitlines()[0]).parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    P = patches(args.n_samples + args.n_components)
    X, D = P[:args.n_samples], P[args.n_samples:]
    D = D / np.linalg.norm(D, axis=1, keepdims=True)
    print(f"Encoding {X.shape[0]} patches (8x8) with {D.shape[0]} atoms, alpha={args.alpha}, "
          f"{args.threads} threads, sparsecode on {device}.")
    rows = []
    variants = [("sparsecode", torch.float32, "auto"), ("sparsecode float64", torch.float64, "auto"),
                ("sparsecode fista+polish", torch.float32, "fista")]
    for name, dtype, algorithm in variants:
        Xt = torch.as_tensor(X, dtype=dtype, device=device)
        Dt = torch.as_tensor(D, dtype=dtype, device=device)
        options = dict(alpha=args.alpha, device=device, algorithm=algorithm)
        if algorithm == "fista":
            options["polish"] = True
        sparse_encode(Xt[:256], Dt, **options)  # warm-up
        t, Z = timed(lambda: sparse_encode(Xt, Dt, **options), device)
        rows.append((name, t, mean_energy(X, Z.cpu().numpy(), D, args.alpha)))
    with threadpool_limits(args.threads):
        from sklearn.decomposition import sparse_encode as sk_encode
        for algo in ("lasso_cd", "lasso_lars"):
            if algo not in args.skip:
                t, Z = timed(lambda: sk_encode(X, D, algorithm=algo, alpha=args.alpha, max_iter=10000))
                rows.append((f"sklearn sparse_encode {algo}", t, mean_energy(X, Z, D, args.alpha)))
    spams = None if "spams" in args.skip else import_spams()
    if spams is not None:
        Xf, Df = np.asfortranarray(X.T), np.asfortranarray(D.T)
        t, Z = timed(lambda: spams.lasso(Xf, D=Df, lambda1=args.alpha, mode=2, numThreads=args.threads))
        rows.append(("spams.lasso (LARS)", t, mean_energy(X, Z.toarray().T, D, args.alpha)))
    report(rows)


if __name__ == "__main__":
    main()
