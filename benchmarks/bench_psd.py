"""PSD encoder inference against exact FISTA inference on the same image patches.

Trains :class:`estimators.PredictiveSparseDecomposition` (tanh encoder) on centred unit-norm 8x8
patches
of ``china.jpg``, then codes other such patches two ways with the same learned dictionary: the
encoder
``F(x) = g*tanh(x W^T + b)`` (one product and a ``tanh``) and FISTA run to a relative duality gap of
1e-6 on the lasso ``0.5*||x - zD||^2 + alpha*||z||_1``. Prints both times, their ratio, and the
relative
error ``||F(x) - z||^2 / ||z||^2`` against the exact lasso codes and against the PSD codes ``z*``
(the minimisers of the PSD energy). Kavukcuoglu, Ranzato & LeCun (2008) report the encoder over 100x
faster than exact sparse coding.

Run from the repository root: ``PYTHONPATH=. python benchmarks/bench_psd.py [--device cuda]
[--threads 1]``
"""

from __future__ import annotations

import time

import torch
from _common import parser, patches, timed

from estimators import PredictiveSparseDecomposition
from sparsecode.solvers import fista


def _relative_error(P: torch.Tensor, Z: torch.Tensor) -> float:
    return float(((P - Z) ** 2).sum() / (Z**2).sum())


def main() -> None:
    p = parser(__doc__.split("\n")[0])
    p.add_argument("--passes", type=int, default=5, help="training passes of PSD (default 5)")
    p.add_argument("--n-test", type=int, default=5000, help="held-out patches coded (default 5000)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    X = patches(args.n_samples + args.n_test).astype("float32")
    Xtr, Xte = X[: args.n_samples], X[args.n_samples :]
    psd = PredictiveSparseDecomposition(
        n_components=args.n_components,
        alpha=args.alpha,
        encoder="tanh",
        max_iter=args.passes,
        tol=0,  # a fixed number of passes
        batch_size=64,
        learning_rate=5e-3,
        random_state=0,
        device=device,
    )
    start = time.perf_counter()
    psd.fit(Xtr)
    print(f"PSD: {len(Xtr)} patches, {args.n_components} atoms, alpha={args.alpha}, {psd.n_iter_} passes in "
          f"{time.perf_counter() - start:.1f} s; energy {psd.loss_curve_[0]:.4f} -> {psd.loss_curve_[-1]:.4f}")

    Xt = torch.from_numpy(Xte).to(device)
    D = torch.from_numpy(psd.components_).to(device)
    with torch.no_grad():
        psd._module(Xt[:10]), fista(Xt[:10], D, args.alpha)  # warm-up (CUDA kernels, allocator)
        t_enc, P = min(
            (timed(lambda: psd._module(Xt), device) for _ in range(5)), key=lambda r: r[0]
        )
        t_fista, res = timed(lambda: fista(Xt, D, args.alpha, max_iter=10000, tol=1e-6), device)
    z_psd = torch.from_numpy(psd.predict_codes(Xte)[1]).to(device)
    n = len(Xte)
    print(f"\n{n} held-out patches on {device}, {args.threads} CPU thread(s):")
    print(f"{'method':<30}{'time (s)':>10}{'us / patch':>12}")
    print(f"{'PSD encoder F(x)':<30}{t_enc:>10.4f}{1e6 * t_enc / n:>12.2f}")
    print(
        f"{'FISTA to gap 1e-6':<30}{t_fista:>10.4f}{1e6 * t_fista / n:>12.2f}"
        f"   ({res.n_iter} iterations, "
        f"{int(res.converged.sum())}/{n} converged)"
    )
    print(f"\ntime ratio FISTA / encoder: {t_fista / t_enc:.0f}x (paper: over 100x)")
    print(
        f"relative error ||F(x) - z||^2 / ||z||^2: "
        f"vs exact lasso codes {_relative_error(P, res.code):.3f}, "
        f"vs PSD codes z* {_relative_error(P, z_psd):.3f}"
    )
    print(
        f"mean non-zeros: lasso {float((res.code != 0).sum(1).float().mean()):.1f}, "
        f"PSD z* {float((z_psd != 0).sum(1).float().mean()):.1f} of {args.n_components}"
    )


if __name__ == "__main__":
    main()
