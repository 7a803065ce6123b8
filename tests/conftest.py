import importlib

import numpy as np
import pytest
import torch

# Tests use tiny problems: one thread avoids OpenMP overhead and oversubscription on 2-core CI.
torch.set_num_threads(1)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(autouse=True)
def _seeds():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)


@pytest.fixture
def torch_paths(monkeypatch):
    """The engine without its compiled CPU kernels: the torch twins that GPUs run, here on the CPU.

    (``SPARSECODE_EXTENSION=0`` decides once per process, at the first use of the kernels.)
    """
    for name in ("sparsecode.solvers.cd", "sparsecode.solvers.greedy", "sparsecode.solvers.ista",
                 "sparsecode.solvers.homotopy", "sparsecode.dictionary"):
        monkeypatch.setattr(importlib.import_module(name), "compiled_kernels", lambda: None)
