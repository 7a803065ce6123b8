"""Convolutional sparse coding of whole images: against SPORCO's ADMM, and against coding all patches.

``python benchmarks/bench_conv.py [--versus sporco] [--threads 1] [--dtype float64] [--crop 0]``
(the default): :func:`sparsecode.solvers.conv_admm` (circular boundary, its defaults) against SPORCO's
``ConvBPDN`` (its defaults: adaptive ``rho``, over-relaxation 1.8) on the issue's problem: the
two grey sample images of scikit-learn in [0, 1], high-pass filtered (minus their Tikhonov low-pass,
``lambda = 5`` on the gradient, computed by FFT), 32 8x8 filters learned by
:class:`estimators.DictionaryLearning` on patches of those images, ``lambda = --alpha`` (0.05). One
function, :func:`objective` (numpy, float64), scores every iterate of both libraries against ``F*``,
the lower of the best iterate and a float64 ADMM run to a relative duality gap of 1e-6 (which bounds
``F - F*`` by about 1e-6 of ``F*``); a first, untimed pass records each solver's objective
after every iteration (through its callback) and finds the iterations it needs to reach relative
objective gaps ``(F - F*) / F*`` of 1e-2, 1e-3 and 1e-4; a second pass times runs of exactly that many
iterations (best of ``--repeat``). Prints iterations, seconds, ``time(ours) / time(SPORCO)`` and
non-zeros. SPORCO is a benchmark peer only (``pip install sporco``); without it its rows are skipped.

``--versus dictionary``: convolutional dictionary learning against SPORCO's ``ConvBPDNDictLearn``
(ADMM coding, ``cns`` dictionary update, the options of its examples), on the same high-pass images cut
into non-overlapping ``--size`` tiles: ``--n-images`` for training, the next ``--n-test`` held out; both
start from the same 32 (``--n-filters``) 8x8 filters (:func:`init_conv_dictionary` on the training
tiles), with the same lambda, circular boundary, and run ``--passes`` outer iterations. Ours is
:func:`conv_dictionary_step` on all tiles per pass with ``--coding-max-iter`` coding and
``--dictionary-max-iter`` dictionary ADMM iterations, the coding ADMM resumed across passes
(``ADMMState``), i.e. CBPDN-DL's interleaving, as SPORCO's one iteration of each. Both are timed
(after a warm-up, ``--repeat`` interleaved runs, best kept) and scored by one function: the mean
:func:`objective` of the held-out tiles at their exact codes with the learned filters (normalised;
float64 ADMM to a relative duality gap of 1e-5).

``--versus patches``: the earlier comparison (issue 7) of convolutional coding and the lasso on all
overlapping patches at equal PSNR:

``python benchmarks/bench_conv.py --versus patches [--device cuda] [--size 64] [--n-images 4]``. Both methods use
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
from sklearn.feature_extraction.image import extract_patches_2d
from threadpoolctl import threadpool_limits

from estimators import DictionaryLearning
from sparsecode import conv_fista, conv_lipschitz_constant, conv_reconstruct
from sparsecode.conv_dictionary import ConvDictionaryState, conv_dictionary_step, init_conv_dictionary
from sparsecode.device import resolve_device
from sparsecode.solvers import conv_admm, solve_lasso
from sparsecode.solvers.conv_admm import ADMMState

PATCH = 8
LEVELS = (1e-2, 1e-3, 1e-4)
SPORCO_MISSING = "SPORCO is not installed (a benchmark peer only): `pip install sporco`; its rows are skipped."


def highpass_images(crop: int = 0, lam: float = 5.0) -> np.ndarray:
    """The two grey sample images in [0, 1] minus their Tikhonov low-pass, float64, shape (2, H, W).

    The low-pass ``l`` minimises ``0.5*||l - s||^2 + 0.5*lam*||grad l||^2`` (circular differences),
    i.e. ``l_hat = s_hat / (1 + lam*|g_hat|^2)``. ``crop > 0`` keeps the central ``crop x crop`` pixels.
    """
    S = np.stack([img.mean(2) / 255.0 for img in load_sample_images().images])
    H, W = S.shape[1:]
    fy, fx = np.fft.fftfreq(H)[:, None], np.fft.rfftfreq(W)[None, :]
    grad2 = np.abs(1 - np.exp(-2j * np.pi * fy)) ** 2 + np.abs(1 - np.exp(-2j * np.pi * fx)) ** 2
    low = np.fft.irfft2(np.fft.rfft2(S) / (1 + lam * grad2), s=(H, W))
    S = S - low
    if crop:
        r, c = (H - crop) // 2, (W - crop) // 2
        S = S[:, r : r + crop, c : c + crop]
    return np.ascontiguousarray(S)


def learned_filters(S: np.ndarray, n_filters: int = 32, alpha: float = 0.05) -> np.ndarray:
    """``n_filters`` unit-norm 8x8 filters learned by online dictionary learning on 20,000 patches of ``S``."""
    P = np.concatenate([extract_patches_2d(img, (PATCH, PATCH), max_patches=10000, random_state=0)
                        for img in S]).reshape(-1, PATCH * PATCH)
    dl = DictionaryLearning(n_filters, alpha=alpha, max_iter=2, random_state=0, device="cpu").fit(P)
    D = dl.components_ / np.linalg.norm(dl.components_, axis=1, keepdims=True)
    return D.reshape(n_filters, PATCH, PATCH)


def objective(S: np.ndarray, Z: np.ndarray, D: np.ndarray, alpha: float) -> float:
    """The circular convolutional lasso objective summed over images, in float64, by numpy alone.

    ``S (n, H, W)``, ``Z (n, K, H, W)``, ``D (K, kh, kw)``: ``0.5*||sum_k D_k (*) z_k - s||^2 + alpha*||Z||_1``
    with ``(*)`` the circular convolution on the ``H x W`` grid, kernels from the top-left corner.
    """
    S, Z, D = (np.asarray(a, dtype=np.float64) for a in (S, Z, D))
    H, W = S.shape[1:]
    rec = np.fft.irfft2((np.fft.rfft2(Z) * np.fft.rfft2(D, s=(H, W))).sum(1), s=(H, W))
    return float(0.5 * ((rec - S) ** 2).sum() + alpha * np.abs(Z).sum())


def sporco_solver(S: np.ndarray, D: np.ndarray, alpha: float, dtype):
    """``run(n_iter, callback)``: SPORCO's ``ConvBPDN`` (defaults, ``FastSolve``) on ``S``; codes (n, K, H, W)."""
    from sporco.admm import cbpdn

    Ds, Ss = D.transpose(1, 2, 0).astype(dtype), S.transpose(1, 2, 0).astype(dtype)

    def run(n_iter: int, callback=None) -> np.ndarray:
        hook = None if callback is None else (lambda b: callback(b.Y[:, :, 0].transpose(2, 3, 0, 1)))
        opt = cbpdn.ConvBPDN.Options({"Verbose": False, "MaxMainIter": n_iter, "RelStopTol": 0.0,
                                      "FastSolve": callback is None, "DataType": dtype, "Callback": hook})
        Y = cbpdn.ConvBPDN(Ds, Ss, alpha, opt, dimK=1).solve()
        return Y[:, :, 0].transpose(2, 3, 0, 1)

    return run


def sparsecode_solver(S: np.ndarray, D: np.ndarray, alpha: float, dtype):
    """``run(n_iter, callback)``: :func:`conv_admm` (circular boundary, its defaults) on ``S``."""
    X, Dt = torch.as_tensor(S, dtype=dtype), torch.as_tensor(D, dtype=dtype)

    def run(n_iter: int, callback=None) -> np.ndarray:
        hook = None if callback is None else (lambda it, Z: callback(Z.numpy()))
        return conv_admm(X, Dt, alpha, boundary="circular", max_iter=n_iter, tol=0.0, callback=hook,
                         chunk_size=len(X)).code.numpy()

    return run


def versus_sporco(args) -> None:
    """The table of iterations and times to relative objective gaps (see the module doc)."""
    try:
        import sporco.fft
    except ImportError:
        sporco = None
        print(SPORCO_MISSING)
    dtype_np = np.float32 if args.dtype == "float32" else np.float64
    dtype_t = torch.float32 if args.dtype == "float32" else torch.float64
    if sporco is not None:
        sporco.fft.pyfftw_threads = args.threads
    S = highpass_images(args.crop)
    D = learned_filters(S)
    alpha = args.alpha
    print(f"{len(S)} images of {S.shape[1]}x{S.shape[2]}, {len(D)} filters 8x8, lambda={alpha}, {args.dtype}, "
          f"{args.threads} thread(s).")
    ref = conv_admm(torch.as_tensor(S), torch.as_tensor(D), alpha, boundary="circular", tol=1e-6, max_iter=2000)
    best = objective(S, ref.code.numpy(), D, alpha)
    solvers = {"sparsecode conv_admm": sparsecode_solver(S, D, alpha, dtype_t)}
    if sporco is not None:
        solvers["SPORCO ConvBPDN"] = sporco_solver(S, D, alpha, dtype_np)
    traces = {}
    for name, run in solvers.items():
        run(2)  # warm-up
        trace = []
        run(args.max_iter, lambda Z, trace=trace: trace.append(objective(S, Z, D, alpha)))
        traces[name] = np.array(trace)
    best = min(best, *(t.min() for t in traces.values()))
    print(f"reference objective F* = {best:.10g} (conv_admm to a duality gap of 1e-6 ({ref.n_iter} iterations), "
          "or the best iterate)")
    print(f"{'solver':<24}{'gap':>8}{'iter':>6}{'seconds':>9}{'ours/SPORCO':>13}{'nnz':>10}")
    for level in LEVELS:
        rows = {}
        for name, run in solvers.items():
            reached = np.flatnonzero((traces[name] - best) / best <= level)
            if not len(reached):
                print(f"{name:<24}{level:>8.0e}  not reached in {args.max_iter} iterations")
                continue
            n_iter = int(reached[0]) + 1
            seconds, Z = min((timed(lambda: run(n_iter)) for _ in range(args.repeat)), key=lambda r: r[0])
            rows[name] = (n_iter, seconds, int((Z != 0).sum()))
        peer = rows.get("SPORCO ConvBPDN", (0, float("nan"), 0))[1]
        for name, (n_iter, seconds, nnz) in rows.items():
            print(f"{name:<24}{level:>8.0e}{n_iter:>6}{seconds:>9.2f}{seconds / peer:>13.2f}{nnz:>10}")


def tiles(S: np.ndarray, size: int, n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """Non-overlapping ``size x size`` tiles of the images ``S``, alternating images: training and held-out."""
    rows, cols = S.shape[1] // size, S.shape[2] // size
    out = [S[i, r * size:(r + 1) * size, c * size:(c + 1) * size]
           for t in range(rows * cols) for i in range(len(S)) for r, c in [divmod(t, cols)]]
    return np.stack(out[:n_train]), np.stack(out[n_train:n_train + n_test])


def sporco_learning(S: np.ndarray, D0: np.ndarray, alpha: float, passes: int, dtype) -> np.ndarray:
    """SPORCO's ``ConvBPDNDictLearn`` (ADMM coding, ``cns`` dictionary update, the options of its examples)."""
    from sporco.dictlrn import cbpdndl

    opt = cbpdndl.ConvBPDNDictLearn.Options({"Verbose": False, "MaxMainIter": passes,
                                             "CBPDN": {"rho": 50.0 * alpha + 0.5},
                                             "CCMOD": {"rho": 10.0}}, xmethod="admm", dmethod="cns")
    learner = cbpdndl.ConvBPDNDictLearn(D0.transpose(1, 2, 0).astype(dtype), S.transpose(1, 2, 0).astype(dtype),
                                        alpha, opt, xmethod="admm", dmethod="cns")
    return learner.solve().squeeze().transpose(2, 0, 1)


def sparsecode_learning(S: np.ndarray, D0: np.ndarray, alpha: float, passes: int, dtype, args) -> np.ndarray:
    """Passes of :func:`conv_dictionary_step` on all images (circular model, codes warm-started across passes)."""
    X, D = torch.as_tensor(S, dtype=dtype), torch.as_tensor(D0, dtype=dtype)[:, None]
    state, codes, resume = ConvDictionaryState.empty(D, X.shape[-2:]), None, ADMMState()
    for _ in range(passes):
        D, res = conv_dictionary_step(X, D, state, alpha, boundary="circular", full_batch=True, z0=codes,
                                      resume=resume, coding_tol=args.coding_tol,
                                      coding_max_iter=args.coding_max_iter,
                                      dictionary_max_iter=args.dictionary_max_iter)
        codes = res.code
    return D[:, 0].numpy()


def versus_sporco_learning(args) -> None:
    """Convolutional dictionary learning against SPORCO's: held-out objective and time after equal passes."""
    try:
        import sporco.fft
        sporco.fft.pyfftw_threads = args.threads
    except ImportError:
        sporco = None
        print(SPORCO_MISSING)
    dtype_np, dtype_t = (np.float32, torch.float32) if args.dtype == "float32" else (np.float64, torch.float64)
    train, test = tiles(highpass_images(), args.size, args.n_images, args.n_test)
    D0 = init_conv_dictionary(torch.as_tensor(train), args.n_filters, (PATCH, PATCH),
                              torch.Generator().manual_seed(0))[:, 0].numpy()
    alpha = args.alpha
    print(f"{len(train)} training and {len(test)} held-out tiles of {args.size}x{args.size}, {len(D0)} filters "
          f"8x8, lambda={alpha}, {args.passes} passes, {args.dtype}, {args.threads} thread(s).")

    def held_out(D: np.ndarray) -> float:
        """Mean objective of the held-out tiles at their exact codes (float64 ADMM to a gap of 1e-5)."""
        D = D / np.maximum(np.linalg.norm(D.reshape(len(D), -1), axis=1), 1e-12)[:, None, None]
        Z = conv_admm(torch.as_tensor(test), torch.as_tensor(D), alpha, boundary="circular", tol=1e-5,
                      max_iter=3000).code.numpy()
        return objective(test, Z, D, alpha) / len(test)

    runs = {"sparsecode": lambda n: sparsecode_learning(train, D0, alpha, n, dtype_t, args)}
    if sporco is not None:
        runs["SPORCO ConvBPDNDictLearn"] = lambda n: sporco_learning(train, D0, alpha, n, dtype_np)
    times, learned = {name: [] for name in runs}, {}
    for name, run in runs.items():
        run(2)  # warm-up
    for _ in range(args.repeat):  # interleaved, so that a changing load hits both
        for name, run in runs.items():
            seconds, learned[name] = timed(lambda: run(args.passes))
            times[name].append(seconds)
    rows = {name: (min(times[name]), held_out(D)) for name, D in learned.items()}
    print(f"held-out objective of the initial filters: {held_out(D0):.6g}")
    peer = rows.get("SPORCO ConvBPDNDictLearn", (float("nan"), float("nan")))
    print(f"{'learner':<26}{'seconds':>9}{'ours/SPORCO':>13}{'held-out objective':>20}{'ours/SPORCO':>13}")
    for name, (seconds, value) in rows.items():
        print(f"{name:<26}{seconds:>9.2f}{seconds / peer[0]:>13.2f}{value:>20.6g}{value / peer[1]:>13.4f}")


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


def versus_patches(args) -> None:
    """Convolutional coding against the lasso on all patches, at equal PSNR (see the module doc)."""
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


def main():
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--versus", choices=("sporco", "dictionary", "patches"), default="sporco")
    p.add_argument("--dtype", choices=("float64", "float32"), default="float64", help="(sporco)")
    p.add_argument("--crop", type=int, default=0, help="(sporco) central crop size; 0: whole images")
    p.add_argument("--max-iter", type=int, default=200, help="(sporco) iterations of the traced pass")
    p.add_argument("--repeat", type=int, default=1, help="(sporco) timed runs per level, best kept")
    p.add_argument("--size", type=int, default=64, help="(patches, dictionary) crop / tile size in pixels")
    p.add_argument("--n-images", type=int, default=4, help="(patches, dictionary) images / training tiles")
    p.add_argument("--n-test", type=int, default=4, help="(dictionary) held-out tiles")
    p.add_argument("--n-filters", type=int, default=32, help="(dictionary)")
    p.add_argument("--passes", type=int, default=50, help="(dictionary) outer iterations of both learners")
    p.add_argument("--coding-tol", type=float, default=0.0, help="(dictionary) ours, per pass")
    p.add_argument("--coding-max-iter", type=int, default=1, help="(dictionary) ours: ADMM iterations per pass")
    p.add_argument("--dictionary-max-iter", type=int, default=1, help="(dictionary) ours, per pass")
    p.add_argument("--tol", type=float, default=1e-3, help="(patches) relative duality gap of both solvers")
    p.set_defaults(n_components=16, alpha=None, threads=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    if args.versus in ("sporco", "dictionary"):
        args.alpha = 0.05 if args.alpha is None else args.alpha
        with threadpool_limits(args.threads):
            (versus_sporco if args.versus == "sporco" else versus_sporco_learning)(args)
    else:
        args.alpha = 0.1 if args.alpha is None else args.alpha
        versus_patches(args)


if __name__ == "__main__":
    main()
