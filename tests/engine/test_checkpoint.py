"""fit_module(checkpoint=...): saved every pass, resumed after a crash to the uninterrupted run's bits."""

from __future__ import annotations

import os

import pytest
import torch

from sparsecode.training import fit_module
from sparsecode.training.checkpoint import Checkpoint

FIT = dict(optimizer="adam", learning_rate=0.05, max_iter=3, batch_size=16, tol=0.0, n_iter_no_change=100,
           lr_decay=1e-3)


def _problem():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(80, 4, generator=g, dtype=torch.float64)
    return X, torch.tanh(X @ torch.randn(4, generator=g, dtype=torch.float64))


def _net():
    torch.manual_seed(1)
    return torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.Tanh(), torch.nn.Linear(3, 1)).double()


class Loss:
    """Mean squared error that counts its calls and raises ``error`` at call ``crash_at``."""

    def __init__(self, crash_at=None, error=RuntimeError):
        self.calls, self.crash_at, self.error = 0, crash_at, error

    def __call__(self, module, x, t):
        self.calls += 1
        if self.calls == self.crash_at:
            raise self.error("crash")
        return 0.5 * ((module(x).squeeze(1) - t) ** 2).mean()


def _fit(checkpoint, loss=None, **options):
    net = _net()
    result = fit_module(net, loss or Loss(), _problem(), generator=torch.Generator().manual_seed(2),
                        checkpoint=checkpoint, **{**FIT, **options})
    return net, result


def _same(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


@pytest.mark.parametrize("options", [{}, {"early_stopping": True, "validation_fraction": 0.2}])
def test_resume_after_a_crash_equals_the_uninterrupted_fit(tmp_path, options):
    ref, ref_result = _fit(None, **options)
    path = tmp_path / "fit.pt"
    with pytest.raises(RuntimeError, match="crash"):
        _fit(path, Loss(crash_at=12), **options)  # 5 steps a pass (4 with early stopping): in pass 3
    net, result = _fit(path, **options)
    assert _same(net, ref)
    assert result.loss_curve == ref_result.loss_curve and result.n_iter == 3
    assert result.validation_scores == ref_result.validation_scores
    assert result.state.n_steps == ref_result.state.n_steps and result.state.epoch == 3
    assert not [f for f in os.listdir(tmp_path) if f.endswith(".tmp")]


def test_ctrl_c_then_refit_resumes_from_the_last_pass(tmp_path):
    ref, _ = _fit(None)
    path = tmp_path / "fit.pt"
    _, stopped = _fit(path, Loss(crash_at=13, error=KeyboardInterrupt))
    assert stopped.interrupted and stopped.n_iter == 2
    loss = Loss()
    net, result = _fit(path, loss)
    assert _same(net, ref) and result.n_iter == 3 and loss.calls == 5


def test_a_finished_fit_is_returned_and_a_larger_max_iter_continues_it(tmp_path):
    path = tmp_path / "fit.pt"
    first, _ = _fit(path)
    loss = Loss()
    again, result = _fit(path, loss)
    assert loss.calls == 0 and _same(again, first) and result.n_iter == 3
    longer, _ = _fit(None, max_iter=4)
    loss = Loss()
    resumed, result = _fit(path, loss, max_iter=4)
    assert loss.calls == 5 and _same(resumed, longer) and result.n_iter == 4


def test_stages_of_one_fit_are_skipped_once_finished(tmp_path):
    def two_stages(checkpoint, loss):
        net, data, g = _net(), _problem(), torch.Generator().manual_seed(2)
        first = fit_module(net, Loss(), data, generator=g, checkpoint=checkpoint, **{**FIT, "max_iter": 2})
        fit_module(net, loss, data, generator=g, checkpoint=checkpoint, **{**FIT, "optimizer": "sgd"})
        return net, first

    ref, ref_first = two_stages(None, Loss())
    path = tmp_path / "fit.pt"
    with pytest.raises(RuntimeError, match="crash"):
        two_stages(Checkpoint(path, identity="two"), Loss(crash_at=8))
    net, first = two_stages(Checkpoint(path, identity="two"), Loss())
    assert _same(net, ref) and first.loss_curve == ref_first.loss_curve


def test_a_file_of_another_fit_is_refused(tmp_path):
    path = tmp_path / "fit.pt"
    fit_module(_net(), Loss(), _problem(), checkpoint=Checkpoint(path, {"alpha": "1", "n": "2"}), **FIT)
    with pytest.raises(ValueError, match=r"differs in alpha.*delete it"):
        fit_module(_net(), Loss(), _problem(), checkpoint=Checkpoint(path, {"alpha": "3", "n": "2"}), **FIT)
    X, y = _problem()
    with pytest.raises(ValueError, match=r"other data on rank\(s\) \[0\]"):
        fit_module(_net(), Loss(), (X + 1, y), checkpoint=Checkpoint(path, {"alpha": "1", "n": "2"}), **FIT)
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a sparsecode checkpoint"):
        fit_module(_net(), Loss(), _problem(), checkpoint=tmp_path / "junk.pt", **FIT)
    with pytest.raises(ValueError, match="does not exist"):
        fit_module(_net(), Loss(), _problem(), checkpoint=tmp_path / "no" / "fit.pt", **FIT)
    with pytest.raises(TypeError, match="checkpoint must be a path"):
        fit_module(_net(), Loss(), _problem(), checkpoint=3, **FIT)
