"""Distributed online dictionary learning keeps one dictionary on every rank with one collective per step."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.distributed as dist

from sparsecode import dictionary
from sparsecode.dictionary import OnlineDictionaryState, init_dictionary, learn_dictionary_online

from .test_distributed import spawn, values

pytestmark = pytest.mark.skipif(not dist.is_available(), reason="torch.distributed is not available")


def _learn(rank, world, seeded):
    g = torch.Generator().manual_seed(rank)  # each rank its own data
    X = torch.randn(60, 6, generator=g, dtype=torch.float64)
    X[:, 3:] = 0.0
    D = init_dictionary(torch.randn(40, 6, generator=g, dtype=torch.float64), 8, g)
    D[:4, 3:] = D[4:, :3] = 0.0  # atoms 4-7 orthogonal to the data and to the others: unused, so redrawn
    D /= torch.linalg.vector_norm(D, dim=1, keepdim=True)  # (from each rank's generator: they differ unseeded)
    collectives = {"broadcast": 0, "all_reduce": 0}
    for name in collectives:
        original = getattr(dist, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            collectives[_name] += 1
            return _original(*args, **kwargs)

        setattr(dist, name, counted)
    generator = torch.Generator().manual_seed(0 if seeded else 1 + rank)  # unseeded: the ranks' draws differ
    res = learn_dictionary_online(X, D, OnlineDictionaryState.zeros(D), 0.1, batch_size=5, max_iter=2,
                                  tol=0, max_no_improvement=None, generator=generator,
                                  step_options={"distributed": True})
    return D, res.n_steps, collectives


@pytest.mark.parametrize("seeded", [True, False], ids=["same generators", "different generators"])
def test_ranks_keep_the_same_dictionary_broadcasting_only_at_the_start_and_after_redraws(seeded):
    outs = values(spawn(2, _learn, seeded))
    D0, n_steps, counts = outs[0]
    for D, _, _ in outs[1:]:
        torch.testing.assert_close(D, D0, rtol=0, atol=0)  # bit-identical, not only close
    assert n_steps == 24 < dictionary.RESYNC_EVERY
    # one all_reduce per step (plus the shard-size agreement), broadcasts only at step 0 and after redraws
    assert counts["all_reduce"] == n_steps + 1
    assert 2 <= counts["broadcast"] < n_steps
    assert np.isfinite(D0.numpy()).all()
