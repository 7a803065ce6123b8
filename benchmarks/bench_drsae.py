"""DrSAE against scikit-learn's MLPClassifier with as many hidden units, in one run.

Digits mode (default): scikit-learn's 8x8 digits, each image scaled to unit L2 norm (as the paper does
for MNIST), 70% / 30% stratified held-out split. Both classifiers see the same inputs; the MLP has one
hidden layer of ``--n-components`` ReLU units (Adam, its defaults otherwise). Prints held-out accuracy,
fit time and the ratios DrSAE / MLP.

MNIST mode (``--mnist DIR``): the paper's experiment (Rolfe & LeCun 2013, section 3; reported test
error 1.08% for 784-400^11-10). ``DIR`` holds the four IDX files from the MNIST page
(``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``,
``t10k-labels-idx1-ubyte``, gzip-compressed or not; see ``benchmarks/mnist.py``). The 60,000 training
images are scaled to unit norm; DrSAE holds out 10,000 of them for early stopping
(``validation_fraction=1/6``), 400 hidden units, T = 11, the estimator's defaults from the author code
(SGD, rate 1e-2, minibatch 10, decay 5e-7 per sample, reconstruction weight 5, 100 pretraining
passes); the error is measured on the 10,000 test images. This takes
hours on a CPU: use ``--device cuda``. Example::

    PYTHONPATH=. python benchmarks/bench_drsae.py --mnist ~/data/mnist --device cuda
    PYTHONPATH=. python benchmarks/bench_drsae.py --mnist ~/data/mnist --max-iter 50 --pretrain-iter 10

Depth mode (``--depths 2 11``): the paper's T = 11 against T = 2 (1.21% against 1.49% MNIST error with
200 units) on digits, with the estimator's defaults, i.e. the author code's SGD schedule (rate 1e-2,
minibatch 10, decay 5e-7, ``--pretrain-iter`` default 100 unsupervised passes, ``--max-iter`` default
200 supervised ones), for every seed of ``--seeds`` (each its own split and initialisation). Prints
held-out accuracy per depth and seed, the mean and standard deviation, and the paired differences::

    PYTHONPATH=. python benchmarks/bench_drsae.py --depths 2 11 --pretrain-iter 20 --max-iter 60 --seeds 0 1 2 3 4

Run from the repository root: ``PYTHONPATH=. python benchmarks/bench_drsae.py [--device cuda]``
"""

from __future__ import annotations

import argparse
import warnings

import numpy as np
import torch
from _common import timed
from mnist import load_mnist
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import normalize

from estimators import DrSAE


def _digits(seed: int):
    X, y = load_digits(return_X_y=True)
    return train_test_split(normalize(X), y, test_size=0.3, random_state=seed, stratify=y)


def _mnist(directory: str):
    Xtr, ytr = load_mnist(directory, "train")
    Xte, yte = load_mnist(directory, "test")
    return normalize(Xtr), normalize(Xte), ytr, yte


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", help='"cpu" (default) or "cuda"')
    p.add_argument("--threads", type=int, default=1, help="CPU threads (default 1: tiny matrices)")
    p.add_argument("--mnist", metavar="DIR", help="run the paper's MNIST experiment on the IDX files in DIR")
    p.add_argument("--n-components", type=int,
                   help="hidden units (default 100 on digits and in depth mode, 400 on MNIST)")
    p.add_argument("--n-layers", type=int, default=11)
    p.add_argument("--max-iter", type=int,
                   help="supervised passes (default 40 on digits, 200 in depth mode, 1000 on MNIST)")
    p.add_argument("--pretrain-iter", type=int,
                   help="pretraining passes (default 5 on digits, 100 in depth mode and on MNIST)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--depths", type=int, nargs="+", help="compare these T on digits (depth mode)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="seeds of the depth mode")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if args.depths:
        compare_depths(args, device)
        return
    if args.mnist:
        Xtr, Xte, ytr, yte = _mnist(args.mnist)
        n_components = args.n_components or 400
        drsae = DrSAE(n_components, n_layers=args.n_layers, pretrain_iter=args.pretrain_iter or 100,
                      optimizer="sgd", learning_rate=1e-2, batch_size=10, max_iter=args.max_iter or 1000,
                      early_stopping=True, validation_fraction=1 / 6, n_iter_no_change=20,
                      random_state=args.seed, device=device, verbose=1)
    else:
        Xtr, Xte, ytr, yte = _digits(args.seed)
        n_components = args.n_components or 100
        drsae = DrSAE(n_components, n_layers=args.n_layers, pretrain_iter=args.pretrain_iter or 5,
                      optimizer="adam", learning_rate=1e-3, batch_size=32, max_iter=args.max_iter or 40,
                      tol=0, random_state=args.seed, device=device)
    mlp = MLPClassifier((n_components,), max_iter=1000, random_state=args.seed)
    print(f"{len(Xtr)} training and {len(Xte)} held-out samples, {Xtr.shape[1]} features, "
          f"{n_components} hidden units, DrSAE T={args.n_layers} on {device}")
    rows = []
    for name, model in (("DrSAE", drsae), ("MLPClassifier", mlp)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            seconds, _ = timed(lambda m=model: m.fit(Xtr, ytr), device if model is drsae else None)
        rows.append((name, seconds, model.score(Xte, yte)))
    t0, a0 = rows[0][1], rows[0][2]
    print(f"{'model':<16}{'fit (s)':>10}{'accuracy':>10}{'error %':>9}{'DrSAE/peer time':>17}"
          f"{'DrSAE-peer acc':>16}")
    for name, seconds, acc in rows:
        print(f"{name:<16}{seconds:>10.2f}{acc:>10.4f}{100 * (1 - acc):>9.2f}{t0 / seconds:>17.2f}"
              f"{a0 - acc:>+16.4f}")
    if args.mnist:
        print(f"paper (784-400^11-10): 1.08% test error; this run: {100 * (1 - a0):.2f}%")
    print("DrSAE reaches the MLP's accuracy" if a0 >= rows[1][2] else
          "DrSAE is below the MLP's accuracy", f"(codes non-zero: "
          f"{np.mean(drsae.transform(Xte) > 0):.1%})")


def compare_depths(args, device) -> None:
    """Held-out digits accuracy of DrSAE at each depth of ``args.depths``, for every seed."""
    n_components = args.n_components or 100
    params = dict(pretrain_iter=args.pretrain_iter or 100, max_iter=args.max_iter or 200, tol=0,
                  device=device)
    print(f"digits, {n_components} hidden units, author SGD schedule ({params['pretrain_iter']} + "
          f"{params['max_iter']} passes), T in {args.depths}, seeds {args.seeds}")
    accuracy = np.empty((len(args.depths), len(args.seeds)))
    warnings.simplefilter("ignore", ConvergenceWarning)  # tol=0: every fit runs to max_iter
    for j, seed in enumerate(args.seeds):
        Xtr, Xte, ytr, yte = _digits(seed)
        for i, T in enumerate(args.depths):
            seconds, model = timed(lambda T=T: DrSAE(n_components, n_layers=T, random_state=seed, **params)
                                   .fit(Xtr, ytr), device)
            accuracy[i, j] = model.score(Xte, yte)
            print(f"  seed {seed}, T={T:2d}: held-out accuracy {accuracy[i, j]:.4f} ({seconds:.1f} s)",
                  flush=True)
    for T, acc in zip(args.depths, accuracy):
        print(f"T={T:2d}: {acc.mean():.4f} +- {acc.std():.4f}  (" + ", ".join(f"{a:.4f}" for a in acc) + ")")
    deepest, shallowest = accuracy[int(np.argmax(args.depths))], accuracy[int(np.argmin(args.depths))]
    diff = deepest - shallowest
    print(f"T={max(args.depths)} - T={min(args.depths)}: {diff.mean():+.4f} on average, "
          f"positive on {int((diff > 0).sum())} of {len(diff)} seeds")


if __name__ == "__main__":
    main()
