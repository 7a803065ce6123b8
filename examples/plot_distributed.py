"""
Learning on several processes with torchrun
===========================================

Two processes (ranks) of a ``torch.distributed`` process group learn together, each on its own shard
of the 8x8 patches of a photograph:

* :class:`~estimators.DictionaryLearning` with ``distributed="allreduce"``: every rank codes its own
  minibatch, the sufficient statistics are summed over the ranks and every rank applies the same
  update, so that the ranks learn exactly what one process learns on the union of their minibatches
  (the example prints the largest difference);
* :class:`~estimators.PredictiveSparseDecomposition` with elastic averaging SGD
  (``distributed=EASGD(tau=4)``, Zhang, Choromanska & LeCun 2015): every rank trains its own copy and
  every 4 steps the copies and a center variable pull toward each other; every rank ends holding the
  center, which each rank scores on its own held-out patches.

Every rank prints its progress, prefixed by ``[rank r/p]``; rank 0 saves the atoms. Run it with

.. code-block:: bash

    torchrun --standalone --nproc-per-node 2 examples/plot_distributed.py

``python examples/plot_distributed.py`` starts those two ranks itself (through ``torchrun``) and
passes their output through. The ranks use the gloo backend on the CPU; on GPUs, see the comment in
``main`` and the user guide's page :doc:`../user_guide/distributed`. Set ``SPARSECODE_QUICK=1`` (or pass
``--quick``) for a fast smoke run.
"""

# %%
import datetime
import os
import subprocess
import sys
import time

import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.distributed as dist
from _setup import example_setup, save_figure
from sklearn.datasets import load_sample_image
from sklearn.feature_extraction.image import extract_patches_2d

from estimators import DictionaryLearning, PredictiveSparseDecomposition
from sparsecode.training.distributed import EASGD

QUICK, _, OUT = example_setup(__doc__)
N_RANKS = 2  # the ranks started when the script is not run by torchrun
N_TRAIN, N_TEST = (2000, 500) if QUICK else (40000, 4000)
N_ATOMS, BATCH = (64 if QUICK else 100), 128  # BATCH: the minibatch of each rank


def patches(n_train: int, n_test: int) -> tuple[np.ndarray, np.ndarray]:
    """Training and held-out 8x8 patches of a grayscale photograph: each without its mean, the flatter
    half left out (flat patches teach nothing), scaled to unit variance."""
    image = load_sample_image("china.jpg").mean(axis=2) / 255
    X = extract_patches_2d(image, (8, 8), max_patches=2 * (n_train + n_test), random_state=0)
    X = X.reshape(len(X), -1)
    X -= X.mean(axis=1, keepdims=True)
    norms = np.linalg.norm(X, axis=1)
    X = X[norms >= np.median(norms)] / X.std()
    return X[:n_train], X[n_train:n_train + n_test]


class RankPrefix:
    """A text stream that writes whole lines, each starting with ``prefix`` (the estimators' ``verbose``
    lines too), so that the lines of the ranks do not mix."""

    def __init__(self, stream, prefix: str):
        self._stream, self._prefix, self._pending = stream, prefix, ""

    def write(self, text: str) -> int:
        *lines, self._pending = (self._pending + text).split("\n")
        if lines:
            self._stream.write("".join(f"{self._prefix}{line}\n" for line in lines))
            self._stream.flush()
        return len(text)

    def flush(self) -> None:
        self._stream.flush()


# %%
# What every rank runs
# --------------------
# ``torchrun`` starts the ranks and sets the environment (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, the
# rendezvous address) that :func:`torch.distributed.init_process_group` reads. Each rank then calls
# ``fit`` on its own shard: here every rank builds the same patches and keeps every ``world``-th one; with
# data too large for one machine, each rank would read its own file. The ``timeout`` bounds how long a
# rank waits for the others: a rank that fails makes the others stop with an error, not hang.
def main() -> None:
    dist.init_process_group("gloo", timeout=datetime.timedelta(minutes=5))
    # On GPUs, one per rank: torch.cuda.set_device(local_rank), init_process_group("nccl", ...) and
    # device=f"cuda:{local_rank}" in the estimators, with local_rank = int(os.environ["LOCAL_RANK"]).
    rank, world = dist.get_rank(), dist.get_world_size()
    sys.stdout = RankPrefix(sys.stdout, f"[rank {rank}/{world}] ")
    torch.set_num_threads(1)
    try:
        X, X_test = patches(N_TRAIN, N_TEST)
        shard, test_shard = X[rank::world], X_test[rank::world]
        print(f"{len(shard)} training patches, {len(test_shard)} held out")
        atoms = learn_dictionary(X, shard, world)
        psd = train_psd(shard, test_shard)
        if rank == 0:
            plot_atoms(atoms, psd.components_)
    finally:
        dist.destroy_process_group()


# %%
# Dictionary learning: the same dictionary as one process
# -------------------------------------------------------
# With ``shuffle=False`` and strided shards (rank ``r`` keeps patches ``r, r + p, r + 2p, ...``), the
# ``k``-th minibatches of the ``p`` ranks together are the ``k``-th minibatch of ``p * BATCH`` patches of
# one process on all the data: the two learn the same dictionary, to rounding. Both start from the same
# atoms, patches of the first minibatch, so that every atom is used from the first step (an unused atom
# is redrawn from a minibatch: rank 0's on several ranks, the union on one process, which would part
# them). ``callback`` prints each rank's progress.
def learn_dictionary(X: np.ndarray, shard: np.ndarray, world: int) -> np.ndarray:
    params = dict(n_components=N_ATOMS, alpha=1.0, max_iter=1 if QUICK else 3, shuffle=False,
                  dict_init=X[:N_ATOMS], tol=0, max_no_improvement=None, device="cpu")  # tol=0: fixed passes

    def progress(info: dict) -> bool:
        if info["step"] % max(1, info["n_steps"] // 4) == 0 or info["step"] == info["n_steps"]:
            print(f"DictionaryLearning step {info['step']}/{info['n_steps']}: "
                  f"minibatch cost {info['batch_cost']:.4f}")
        return False

    start = time.perf_counter()
    dl = DictionaryLearning(batch_size=BATCH, distributed="allreduce", callback=progress, **params).fit(shard)
    seconds = time.perf_counter() - start
    # The check: every rank learns the union of the minibatches alone (in parallel, one core each).
    start = time.perf_counter()
    alone = DictionaryLearning(batch_size=world * BATCH, **params).fit(X)
    print(f"DictionaryLearning on {world} ranks: {seconds:.1f} s; one process on all the patches: "
          f"{time.perf_counter() - start:.1f} s; largest difference of the atoms: "
          f"{np.abs(dl.components_ - alone.components_).max():.1e}")
    return dl.components_


# %%
# PSD with elastic averaging SGD
# ------------------------------
# Every rank trains its own copy of the encoder and decoder with momentum SGD on its shard; every
# ``tau = 4`` steps each copy moves toward the center variable by ``alpha (x_i - center)`` and the center
# by ``alpha`` times the sum of these differences, with ``alpha = 0.9 / p`` (the paper's ``beta = 0.9``).
# After ``fit`` every rank holds the center: each rank scores it on its own held-out patches and
# compares it with rank 0's.
def train_psd(shard: np.ndarray, test_shard: np.ndarray) -> PredictiveSparseDecomposition:
    psd = PredictiveSparseDecomposition(
        n_components=N_ATOMS, alpha=1.0, optimizer="momentum", learning_rate=0.05, batch_size=32,
        max_iter=2 if QUICK else 5, tol=0, verbose=1, random_state=0, device="cpu",
        distributed=EASGD(tau=4),
    ).fit(shard)
    rank0 = torch.from_numpy(psd.components_.copy())
    dist.broadcast(rank0, 0)
    print(f"PSD held-out energy on my shard: {-psd.score(test_shard):.4f}; largest difference of my atoms "
          f"from rank 0's: {np.abs(psd.components_ - rank0.numpy()).max():.1e}")
    return psd


# %%
# The atoms (rank 0)
# ------------------
def plot_atoms(dictionary_atoms: np.ndarray, psd_atoms: np.ndarray) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(9, 4.8))
    titles = ["DictionaryLearning, allreduce", "PSD decoder, EASGD center"]
    for ax, atoms, title in zip(axes, [dictionary_atoms, psd_atoms], titles):
        side = int(np.ceil(np.sqrt(len(atoms))))
        grid = np.full((side * 9 + 1, side * 9 + 1), np.nan)
        for k, atom in enumerate(atoms):
            i, j = divmod(k, side)
            grid[1 + 9 * i:9 * (i + 1), 1 + 9 * j:9 * (j + 1)] = atom.reshape(8, 8) / np.abs(atom).max()
        ax.imshow(grid, cmap="gray", vmin=-1, vmax=1)
        ax.set_title(f"{title} ({len(atoms)} atoms)")
        ax.axis("off")
    fig.suptitle(f"8x8 patches learned on {dist.get_world_size()} ranks")
    fig.tight_layout()
    save_figure(fig, OUT / "distributed_atoms.png")


# %%
# Launching
# ---------
# Under ``torchrun`` (``LOCAL_RANK`` is set) this process is a rank. Otherwise the script starts
# ``N_RANKS`` ranks of itself with ``torchrun`` (``python -m torch.distributed.run``) on this machine and
# passes their output through, then shows the picture rank 0 saved.
def launch(n_ranks: int) -> None:
    script, args = os.path.abspath(sys.argv[0]), ["--quick"] if QUICK else []
    options = ["--standalone", f"--nproc-per-node={n_ranks}"]
    env = dict(os.environ, PYTHONUNBUFFERED="1")  # each rank's lines as they come
    env.setdefault("OMP_NUM_THREADS", "1")
    print(" ".join(["torchrun", *options, os.path.basename(script), *args]))
    command = [sys.executable, "-m", "torch.distributed.run", *options, script, *args]
    with subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True) as ranks:
        for line in ranks.stdout:
            print(line, end="")
    if ranks.returncode:
        raise RuntimeError(f"a rank failed (torchrun exited with {ranks.returncode}): see its traceback above.")


if "LOCAL_RANK" in os.environ:
    main()
else:
    launch(N_RANKS)
    ax = plt.figure(figsize=(9, 4.8)).add_axes((0, 0, 1, 1))
    ax.imshow(plt.imread(OUT / "distributed_atoms.png"))
    ax.axis("off")
