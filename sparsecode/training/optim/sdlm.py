r"""Stochastic diagonal Levenberg-Marquardt (LeCun, Bottou, Orr & Mueller, "Efficient BackProp", 1998).

Every weight has its own rate, set from a running estimate ``h`` of the diagonal of the
Gauss-Newton matrix:

.. math::

    w_k \leftarrow w_k - \frac{\varepsilon}{h_k + \mu} \frac{\partial E}{\partial w_k},
    \qquad \mu = 0.02 \text{ by default (LeNet-5)}.

Gauss-Newton diagonal. When the mean loss over a batch of ``n`` samples is a sum of squared
residuals, ``E = (1/n) sum_p 1/2 ||r_p||^2`` with ``r_p = r(x_p; w)`` in ``R^k``, then

.. math::

    h_k = \frac{1}{n} \sum_{p=1}^{n} \sum_{i=1}^{k}
          \Big(\frac{\partial r_{p,i}}{\partial w_k}\Big)^2 \;\ge\; 0,

the diagonal of ``(1/n) sum_p J_p^T J_p`` (:func:`gauss_newton_diagonal` with ``n_probes=0``,
from per-sample Jacobians by ``torch.func.vmap(jacrev)``).
With ``n_probes = m > 0`` it uses the unbiased estimate ``h ~ (1/(n m)) sum_j (J^T v_j)^2`` with
Rademacher vectors ``v_j`` of shape ``(n, k)`` (one backward pass per probe, whatever ``k``).

Cross-entropy ``-log softmax(z)_y`` has the Hessian ``H = diag(s) - s s^T`` in the logits ``z``
(``s = softmax(z)``). With ``A = diag(sqrt(s)) - sqrt(s) s^T`` one has ``A^T A = H``, so the
residual ``r = stopgrad(A) z`` (:func:`softmax_residuals`) gives ``J_r^T J_r = J_z^T H J_z``,
the Gauss-Newton matrix of the cross-entropy.

Without residuals the diagonal falls back to the empirical Fisher ``(1/n) sum_p (dE_p/dw)^2``
(squared per-sample gradients, one backward pass per sample), a common stand-in that agrees with
the Gauss-Newton diagonal at a perfect fit only in expectation.

Through its training hooks (:mod:`sparsecode.training.optim.hooks`), :func:`sparsecode.training.fit_module`
estimates ``h`` on ``hessian_samples`` random samples (LeNet-5: 500) before the optimizer is built
(:meth:`SDLM.prepare`, which also gives ``learning_rate="auto"`` its preconditioner ``1 / (h + mu)``)
and re-estimates it every ``hessian_interval`` samples (default: once per pass, LeNet-5's schedule).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch

from ...device import draw_device
from .._common import trainable
from ._checks import check_options
from .hooks import TrainContext, TrainingHooks

__all__ = ["SDLM", "sdlm", "gauss_newton_diagonal", "softmax_residuals"]

_EXACT_CHUNK_ELEMENTS = 2**24  # rows x parameters per batched backward in the exact diagonal


def softmax_residuals(logits: torch.Tensor) -> torch.Tensor:
    """Residuals whose Gauss-Newton matrix is that of the softmax cross-entropy.

    Parameters
    ----------
    logits : Tensor of shape (n_samples, n_classes)

    Returns
    -------
    Tensor of shape (n_samples, n_classes)
        ``stopgrad(A) z`` with ``A^T A = diag(s) - s s^T`` (see the module doc).
    """
    s = torch.softmax(logits.detach(), dim=1)
    root = s.sqrt()
    factor = torch.diag_embed(root) - root.unsqueeze(2) * s.unsqueeze(1)
    return torch.einsum("nij,nj->ni", factor, logits)


class _Residual(torch.nn.Module):
    """``residual_fn`` as a module, so that :func:`torch.func.functional_call` can swap weights."""

    def __init__(self, module: torch.nn.Module, residual_fn: Callable[..., torch.Tensor]):
        super().__init__()
        self.inner, self.residual_fn = module, residual_fn

    def forward(self, *batch: torch.Tensor) -> torch.Tensor:
        return self.residual_fn(self.inner, *batch)


def _per_sample_diagonal(module, residual_fn, batch, params) -> list[torch.Tensor]:
    """Exact diagonal from per-sample Jacobians (``torch.func.vmap`` of ``jacrev``)."""
    wrapper = _Residual(module, residual_fn)
    index = {id(p): name for name, p in wrapper.named_parameters()}
    names = [index[id(p)] for p in params]

    def one(values, *sample):
        out = torch.func.functional_call(
            wrapper, dict(zip(names, values)), tuple(t.unsqueeze(0) for t in sample)
        )
        return out.reshape(-1)

    def squared(values, *sample):
        return [j.square().sum(0) for j in torch.func.jacrev(one)(values, *sample)]

    values = [p.detach() for p in params]
    width = residual_fn(module, *(t[:1] for t in batch)).numel()
    n_params = sum(p.numel() for p in params)
    chunk = max(1, _EXACT_CHUNK_ELEMENTS // max(width * n_params, 1))
    vmapped = torch.func.vmap(squared, in_dims=(None,) + (0,) * len(batch))
    total = [torch.zeros_like(p) for p in params]
    for start in range(0, batch[0].shape[0], chunk):
        rows = vmapped(values, *(t[start : start + chunk] for t in batch))
        for acc, g in zip(total, rows):
            acc.add_(g.sum(0))
    return total


def _row_diagonal(residuals: torch.Tensor, params: list[torch.Tensor]) -> list[torch.Tensor]:
    """Exact diagonal, one batched backward per chunk of residual entries (no vmap of forward)."""
    flat = residuals.reshape(-1)
    total = [torch.zeros_like(p) for p in params]
    n_params = sum(p.numel() for p in params)
    chunk = max(1, _EXACT_CHUNK_ELEMENTS // max(n_params, 1))
    eye = torch.eye(flat.numel(), device=flat.device, dtype=flat.dtype)
    for start in range(0, flat.numel(), chunk):
        rows = torch.autograd.grad(
            flat,
            params,
            grad_outputs=eye[start : start + chunk],
            is_grads_batched=True,
            retain_graph=True,
            allow_unused=True,
        )
        for acc, g in zip(total, rows):
            if g is not None:
                acc.add_(g.square().sum(0))
    return total


def _probe_diagonal(
    residuals: torch.Tensor,
    params: list[torch.Tensor],
    n_probes: int,
    generator: torch.Generator | None,
) -> list[torch.Tensor]:
    total = [torch.zeros_like(p) for p in params]
    device = draw_device(generator, residuals)
    for _ in range(n_probes):
        signs = torch.randint(0, 2, residuals.shape, generator=generator, device=device)
        v = (2 * signs - 1).to(device=residuals.device, dtype=residuals.dtype)
        grads = torch.autograd.grad(residuals, params, v, retain_graph=True, allow_unused=True)
        for acc, g in zip(total, grads):
            if g is not None:
                acc.add_(g.square(), alpha=1.0 / n_probes)
    return total


def _fisher_diagonal(
    module: torch.nn.Module, loss_fn: Callable, batch: tuple, params: list[torch.Tensor]
) -> list[torch.Tensor]:
    total = [torch.zeros_like(p) for p in params]
    for i in range(batch[0].shape[0]):
        loss = loss_fn(module, *(t[i : i + 1] for t in batch))
        for acc, g in zip(total, torch.autograd.grad(loss, params, allow_unused=True)):
            if g is not None:
                acc.add_(g.square())
    return total


def gauss_newton_diagonal(
    module: torch.nn.Module,
    batch: tuple[torch.Tensor, ...],
    *,
    residual_fn: Callable[..., torch.Tensor] | None = None,
    loss_fn: Callable[..., torch.Tensor] | None = None,
    params: Sequence[torch.Tensor] | None = None,
    n_probes: int = 0,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """Diagonal of the Gauss-Newton matrix of the mean loss over ``batch``.

    Parameters
    ----------
    module : torch.nn.Module
    batch : tuple of tensors sharing dim 0
    residual_fn : callable, optional
        ``residual_fn(module, *batch) -> (n, k)`` such that the mean loss is
        ``(1/n) sum_p 1/2 ||r_p||^2`` (or its Gauss-Newton model, see :func:`softmax_residuals`).
    loss_fn : callable, optional
        ``loss_fn(module, *batch) -> scalar`` mean loss; used (empirical Fisher) when
        ``residual_fn`` is None.
    params : sequence of tensors, optional
        Defaults to the module's parameters that require grad.
    n_probes : int, default=0
        0: exact, from per-sample Jacobians (``torch.func``; for modules it cannot vmap, one
        batched backward per chunk of residual entries); ``m > 0``: unbiased estimate from
        ``m`` Rademacher probes.
    generator : torch.Generator, optional
        For the probes.

    Returns
    -------
    list of tensors shaped like ``params``.
    """
    params = trainable(module, params)
    n = batch[0].shape[0]
    with torch.enable_grad():
        if residual_fn is None:
            if loss_fn is None:
                raise ValueError("gauss_newton_diagonal needs residual_fn or loss_fn.")
            total = _fisher_diagonal(module, loss_fn, batch, params)
        else:
            if n_probes > 0:
                total = _probe_diagonal(residual_fn(module, *batch), params, n_probes, generator)
            else:
                try:
                    total = _per_sample_diagonal(module, residual_fn, batch, params)
                except RuntimeError:  # a module torch.func cannot vmap (data-dependent control flow)
                    total = _row_diagonal(residual_fn(module, *batch), params)
    return [t.div_(n) for t in total]


def sdlm(params: list[torch.Tensor], grads: list[torch.Tensor], hessians: list[torch.Tensor], *, lr: float,
         mu: float) -> None:
    """Functional SDLM: ``w <- w - lr * g / (h + mu)`` in place."""
    torch._foreach_addcdiv_(params, grads, torch._foreach_add(hessians, mu), value=-lr)


class SDLM(TrainingHooks, torch.optim.Optimizer):
    """Stochastic diagonal Levenberg-Marquardt: per-weight rates ``lr / (h + mu)``.

    Parameters
    ----------
    params : iterable of tensors or of dicts
    lr : float, default=1e-2
        Global rate ``epsilon``.
    mu : float, default=0.02
        Levenberg-Marquardt damping.
    hessian_samples : int, default=500
        Samples used for each estimate of ``h`` (in :func:`sparsecode.training.fit_module`).
    hessian_interval : int or None, default=None
        Re-estimate ``h`` every that many training samples; None: once per pass.
    hessian_probes : int, default=0
        0: exact Gauss-Newton diagonal; ``m > 0``: ``m`` Rademacher probes (cheaper when the
        residuals are wide, e.g. reconstructions).
    hessian_diagonal : sequence of tensors, optional
        The first ``h`` (as in :meth:`set_hessian_diagonal`).

    Notes
    -----
    ``h`` must be set (``hessian_diagonal`` or :meth:`set_hessian_diagonal`; the training loop
    does it) before :meth:`step`.

    Examples
    --------
    >>> w = torch.nn.Parameter(torch.tensor([2.0]))
    >>> opt = SDLM([w], lr=1.0, mu=0.0)
    >>> opt.set_hessian_diagonal([torch.tensor([4.0])])
    >>> (2.0 * w ** 2).sum().backward(); _ = opt.step()
    >>> w.item()  # one Newton step on 2 w^2
    0.0
    """

    def __init__(
        self,
        params: Iterable,
        lr: float = 1e-2,
        mu: float = 0.02,
        hessian_samples: int = 500,
        hessian_interval: int | None = None,
        hessian_probes: int = 0,
        hessian_diagonal: Sequence[torch.Tensor] | None = None,
    ) -> None:
        check_options(
            {"learning rate": lr, "hessian_samples": hessian_samples, "hessian_interval": hessian_interval},
            {"mu": mu, "hessian_probes": hessian_probes},
        )
        defaults = {
            "lr": lr,
            "mu": mu,
            "hessian_samples": int(hessian_samples),
            "hessian_interval": hessian_interval,
            "hessian_probes": int(hessian_probes),
        }
        super().__init__(params, defaults)
        self.param_groups[0]["samples_since_hessian"] = 0
        if hessian_diagonal is not None:
            self.set_hessian_diagonal(hessian_diagonal)

    @classmethod
    def prepare(cls, context: TrainContext, options: dict) -> tuple[dict, list[torch.Tensor]]:
        """Estimate ``h`` before the optimizer is built: for its constructor and for ``"auto"``.

        Returns ``options`` with ``hessian_diagonal`` set and the preconditioner ``1 / (h + mu)``
        of ``learning_rate="auto"``.
        """
        template = cls(context.params, **options)  # checks the options, fills in the defaults
        hessian = template.estimate_hessian_diagonal(context)
        mu = template.param_groups[0]["mu"]
        return {**options, "hessian_diagonal": hessian}, [1.0 / (h + mu) for h in hessian]

    def before_step(self, n_batch: int, context: TrainContext) -> None:
        """Re-estimate ``h`` once ``hessian_interval`` samples (default: a pass) went by since the last."""
        group = self.param_groups[0]
        if group["samples_since_hessian"] >= (group["hessian_interval"] or context.n_train):
            self.set_hessian_diagonal(self.estimate_hessian_diagonal(context))
            group["samples_since_hessian"] = 0
        group["samples_since_hessian"] += n_batch

    def estimate_hessian_diagonal(self, context: TrainContext) -> list[torch.Tensor]:
        """:func:`gauss_newton_diagonal` on ``hessian_samples`` random training samples of ``context``."""
        group = self.param_groups[0]
        return gauss_newton_diagonal(
            context.module,
            context.sample(group["hessian_samples"]),
            residual_fn=context.residual_fn,
            loss_fn=context.loss_fn,
            params=self.parameters(),
            n_probes=group["hessian_probes"],
            generator=context.generator,
        )

    def parameters(self) -> list[torch.Tensor]:
        """All parameters, in group order (the order of :meth:`set_hessian_diagonal`)."""
        return [p for group in self.param_groups for p in group["params"]]

    @property
    def has_hessian(self) -> bool:
        """True once a diagonal has been set."""
        return all("hessian" in self.state[p] for p in self.parameters())

    @torch.no_grad()
    def set_hessian_diagonal(self, diagonals: Sequence[torch.Tensor]) -> None:
        """Store ``h`` (one non-negative tensor per parameter, in :meth:`parameters` order)."""
        params = self.parameters()
        if len(diagonals) != len(params):
            raise ValueError(f"Expected {len(params)} diagonals, got {len(diagonals)}.")
        for p, h in zip(params, diagonals):
            self.state[p]["hessian"] = h.detach().to(device=p.device, dtype=p.dtype).clone()

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:
        """One SDLM update."""
        if not self.has_hessian:
            raise RuntimeError("SDLM.step needs a Hessian diagonal: call set_hessian_diagonal.")
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            params = [p for p in group["params"] if p.grad is not None]
            if params:
                sdlm(
                    params,
                    [p.grad for p in params],
                    [self.state[p]["hessian"] for p in params],
                    lr=group["lr"],
                    mu=group["mu"],
                )
        return loss
