"""Where one step of online dictionary learning spends its time: coding the minibatch, and the sweeps.

Run ``python benchmarks/profile_dictionary_step.py [--device cuda]``. The step of ``bench_dictionary.py`` (256
unit-norm 8x8 patches of ``china.jpg``, 256 atoms, alpha 0.1 of their contrast, three block-coordinate sweeps),
timed over 20 steps after 10 of warm-up, then counted once: the torch operations each part dispatches (views
left out) and its host synchronisations (``.item()``, ``nonzero`` and copies to the host; a ``.tolist()`` of a CPU
tensor dispatches nothing, so on the CPU the torch homotopy's one transfer a path step goes uncounted). On a GPU
each operation is a kernel launch, and their number, not their size, sets the time of small problems; on the
CPU the compiled kernels are one operation each.
"""

from __future__ import annotations

import time

import torch
from _common import parser, patches
from torch.utils._python_dispatch import TorchDispatchMode

from sparsecode.device import resolve_device
from sparsecode.dictionary import N_SWEEPS, OnlineDictionaryState, init_dictionary, update_dictionary
from sparsecode.penalties import make_penalty
from sparsecode.solvers.encode import solve_lasso

_SYNCS = (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.nonzero.default)


class _Count(TorchDispatchMode):
    """Operations dispatched (views left out) and host synchronisations."""

    def __init__(self):
        super().__init__()
        self.ops = self.syncs = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops += not func.is_view
        to = (kwargs or {}).get("device")
        self.syncs += func in _SYNCS or (func is torch.ops.aten._to_copy.default and to is not None
                                         and torch.device(to).type == "cpu" and args[0].device.type != "cpu")
        return func(*args, **(kwargs or {}))


def count(fn) -> str:
    """What ``fn()`` dispatches, as text."""
    with _Count() as counted:
        fn()
    return f"{counted.ops:6d} operations, {counted.syncs:4d} host syncs"


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> None:
    args = parser(__doc__).parse_args()
    device = resolve_device(args.device)
    torch.set_num_threads(args.threads)
    X = torch.as_tensor(patches(args.n_samples), dtype=torch.float32, device=device)
    alpha = args.alpha * float(((X - X.mean(1, keepdim=True)) ** 2).sum(1).mean().sqrt())
    D = init_dictionary(X, args.n_components, generator=torch.Generator().manual_seed(0))
    state = OnlineDictionaryState.zeros(D)
    penalty = make_penalty().to(X)
    batch = 256

    def code(step):
        return solve_lasso(X[step * batch:(step + 1) * batch], D, alpha, penalty=penalty, tol=1e-4).code

    def sweeps():
        for _ in range(N_SWEEPS):
            update_dictionary(D, state.A, state.B)

    t_code = t_sweeps = 0.0
    for step in range(30):
        sync(device)
        start = time.perf_counter()
        Z = code(step)
        sync(device)
        t_code += (time.perf_counter() - start) * (step >= 10)
        # the statistics, outside both timings (a fixed forgetting factor: the sweeps' cost does not depend on it)
        Xb = X[step * batch:(step + 1) * batch]
        state.A.mul_(0.9).add_(Z.T @ Z / batch)
        state.B.mul_(0.9).add_(Z.T @ Xb / batch)
        sync(device)
        start = time.perf_counter()
        sweeps()
        sync(device)
        t_sweeps += (time.perf_counter() - start) * (step >= 10)
    print(f"one step on {device}, {batch} patches, {args.n_components} atoms, {N_SWEEPS} sweeps:")
    print(f"  coding  {1e3 * t_code / 20:7.1f} ms, {count(lambda: code(30))}")
    print(f"  sweeps  {1e3 * t_sweeps / 20:7.1f} ms, {count(sweeps)}")


if __name__ == "__main__":
    main()
