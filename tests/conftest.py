
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
