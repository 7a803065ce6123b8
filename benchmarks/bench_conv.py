"""Convolutional vs patch-based sparse coding of whole images, at equal reconstruction quality.

Run ``python benchmarks/bench_conv.py [--device cuda] [--size 64] [--n-images 4]``. Both methods use
the same 16 unit-norm 8x8 atoms (the lowest-frequency 2-D DCT atoms) on grey, centred crops of
scikit-learn's sample images:

* convolutional: :func:`sparsecode.solvers.conv.conv_fista` on every whole image, with the reconstruction
  by FFT (``method="fft"``, the default for kernels this size) and by ``conv_transpose2d``
  (``method="direct"``; the only path before), and the step ``1/L`` from the FFT bound of
  :func:`sparsecode.convolution.conv_lipschitz_constant`;
* patch-based: the lasso on all overlapping 8x8 patches (:func:`sparsecode.solvers.solve_lasso`
  with ``algorithm="auto"``, the library's fastest), each patch rebuilt from its code and the
  patches averaged back into the image (as in the denoising example).

The patches are coded with ``alpha = --alpha``; the convolutional ``alpha`` is then raised until the
convolutional reconstruction of the first image has the PSNR of the patch one (within 0.05 dB; with
the same atoms the convolutional model reaches a higher PSNR at equal ``alpha``, and the patch model
cannot reach the convolutional PSNR at all), so the two are timed at equal quality. Prints time per
image, the ratio ``time(conv) / time(patches)``, FISTA iterations, non-zeros per pixel and the PSNRs
over all images.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from _common import parser, timed
from sklearn.datasets import load_sample_images

from sparsecode import conv_fista, conv_lipschitz_constant, conv_reconstruct
from sparsecode.device import resolve_device
from sparsecode.solvers import solve_lasso

PATCH = 8


def dct_atoms(n_atoms: int, size: int = PATCH) -> np.ndarray:
    """The ``n_atoms`` lowest-frequency unit-norm 2-D DCT-II atoms, shape (n, size, size)."""
    k = np.arange(size)
    basis = np.cos(np.pi * (k[None, :] + 0.5) * k[:, None] / size)
    order = sorted(
        ((u, v) for u in range(size) for v in range(size)), key=lambda uv: (uv[0] + uv[1], uv)
    )
    atoms = np.stack([np.outer(basis[u], basis[v]) for u, v in order[:n_atoms]])
    return atoms / np.linalg.norm(atoms.reshape(n_atoms, -1), axis=1)[:, None, None]


def crops(n: int, size: int) -> np.ndarray:
    """``n`` grey crops of china/flower, zero mean, unit variance, shape (n, size, size)."""
    images = [img.mean(2) / 255.0 for img in load_sample_images().images]
    rng = np.random.RandomState(0)
    out = []
    for i in range(n):
        img = images[i % len(images)]
        r, c = rng.randint(img.shape[0] - size), rng.randint(img.shape[1] - size)
        crop = img[r : r + size, c : c + size]
        out.append((crop - crop.mean()) / (crop.std() + 1e-8))
    return np.stack(out)


def psnr(X: torch.Tensor, R: torch.Tensor) -> float:
    peak = float(X.amax() - X.amin())
    return float(10 * torch.log10(peak**2 / ((X - R) ** 2).mean()))


def patch_coding(X: torch.Tensor, D: torch.Tensor, alpha: float, tol: float):
    """Codes of all overlapping patches and the image rebuilt by averaging their reconstructions."""
    n, H, W = X.shape
    P = F.unfold(X[:, None], PATCH).transpose(1, 2).reshape(-1, PATCH * PATCH)
    res = solve_lasso(P, D, alpha, algorithm="auto", tol=tol, max_iter=5000)
    rec = (res.code @ D).reshape(n, -1, PATCH * PATCH).transpose(1, 2)
    ones = torch.ones_like(X[:, None])
    count = F.fold(F.unfold(ones, PATCH), (H, W), PATCH)
    return res.code, (F.fold(rec, (H, W), PATCH) / count)[:, 0]


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=64, help="crop size in pixels (default 64)")
    p.add_argument("--n-images", type=int, default=4)
    p.add_argument("--tol", type=float, default=1e-3, help="relative duality gap of both solvers")
    p.set_defaults(n_components=16, alpha=0.1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    X = torch.as_tensor(crops(args.n_images, args.size), dtype=torch.float32, device=device)
    atoms = torch.as_tensor(dct_atoms(args.n_components), dtype=torch.float32, device=device)
    K, n = atoms.shape[0], X.shape[0]
    print(
        f"{n} images of {args.size}x{args.size}, {K} DCT atoms of {PATCH}x{PATCH}, tol={args.tol}, "
        f"{args.threads} threads, on {device}."
    )

    D = atoms.reshape(K, -1)
    patch_coding(X[:1], D, args.alpha, args.tol)  # warm-up
    t_patch, (codes, rec) = timed(lambda: patch_coding(X, D, args.alpha, args.tol), device)
    nnz_patch = float((codes != 0).sum()) / X.numel()

    # The convolutional model reaches a higher PSNR at equal alpha: raise its alpha until its PSNR
    # on the
    # first image equals the patch PSNR there (doubling, then bisection), then time it on all
    # images.
    L_conv = conv_lipschitz_constant(atoms[:, None], X.shape[-2:])

    def conv_psnr(alpha: float, images: torch.Tensor, method: str = "fft") -> tuple[float, object]:
        res = conv_fista(images, atoms, alpha, L=L_conv, tol=args.tol, method=method)
        return psnr(images, conv_reconstruct(res.code, atoms[:, None])[:, 0]), res

    target = psnr(X[:1], rec[:1])
    lo, hi = 0.0, args.alpha
    while conv_psnr(hi, X[:1])[0] > target and hi < 1e3:
        lo, hi = hi, 2 * hi
    for _ in range(12):
        alpha = 0.5 * (lo + hi)
        quality = conv_psnr(alpha, X[:1])[0]
        if abs(quality - target) < 0.05:
            break
        lo, hi = (alpha, hi) if quality > target else (lo, alpha)
    rows = []
    for method in ("fft", "direct"):
        t_conv, (quality, res) = timed(lambda: conv_psnr(alpha, X, method), device)
        nnz_conv = float((res.code != 0).sum()) / X.numel()
        rows.append((f"convolutional FISTA, {method} reconstruction", t_conv, res.n_iter, nnz_conv,
                     quality, alpha))
    rows.append(("lasso on all overlapping 8x8 patches", t_patch, None, nnz_patch, psnr(X, rec),
                 args.alpha))

    print(f"{'method':<42}{'ms/image':>10}{'conv/peer':>11}{'iter':>6}{'nnz/pixel':>11}"
          f"{'PSNR dB':>9}{'alpha':>8}")
    for name, t, n_iter, nnz, quality, a in rows:
        print(f"{name:<42}{1e3 * t / n:>10.1f}{rows[0][1] / t:>11.2f}"
              f"{'' if n_iter is None else n_iter:>6}{nnz:>11.3f}{quality:>9.2f}{a:>8.3f}")


if __name__ == "__main__":
    main()
