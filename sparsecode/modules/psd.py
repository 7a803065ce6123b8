r"""PSD encoders and the PSD model (Kavukcuoglu, Ranzato & LeCun 2008; ``LinearPsd.lua``).

The feed-forward predictors of the sparse code, with filters :math:`W \in \mathbb R^{m\times n}`
(rows, like atoms), bias :math:`b` and a diagonal gain :math:`g`:

.. math::
    F_{tanh}(x) = g \odot \tanh(xW^T + b), \qquad
    F_{shrink}(x) = g \odot h_\theta(xW^T + b), \qquad
    F_{linear}(x) = xW^T + b ,

with :math:`h_\theta` the soft threshold (learned per-unit :math:`\theta`; non-negative with
``positive``). Each is initialised from a dictionary :math:`D`: :math:`W = D`, :math:`b = 0`,
:math:`g = 1` (and :math:`\theta = \alpha`), so :math:`F_{shrink}` starts as one ISTA step from zero
with unit step. :class:`PSD` holds an encoder and the decoder :math:`D` trained together by
:func:`sparsecode.psd.psd_loss`.
"""

from __future__ import annotations

import torch
from torch import nn

from ..prox import shrink

__all__ = ["TanhEncoder", "ShrinkEncoder", "LinearEncoder", "ENCODERS", "PSD"]


class LinearEncoder(nn.Module):
    """:math:`F(x) = xW^T + b`, initialised at ``W = dictionary``, ``b = 0``.

    Parameters
    ----------
    dictionary : torch.Tensor, shape (n_components, n_features)
        Sets the initial filters, the device and the dtype.
    """

    def __init__(self, dictionary: torch.Tensor, **_):
        super().__init__()
        self.weight = nn.Parameter(dictionary.detach().clone())
        self.bias = nn.Parameter(dictionary.new_zeros(dictionary.shape[0]))

    def linear(self, X: torch.Tensor) -> torch.Tensor:
        return X @ self.weight.T + self.bias

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.linear(X)


class TanhEncoder(LinearEncoder):
    """:math:`F(x) = g \\odot \\tanh(xW^T + b)` with a learned diagonal gain ``g`` (initially 1).

    Examples
    --------
    >>> enc = TanhEncoder(torch.eye(2))
    >>> enc(torch.tensor([[0.0, 1.0]]))
    tensor([[0.0000, 0.7616]], grad_fn=<MulBackward0>)
    """

    def __init__(self, dictionary: torch.Tensor, **_):
        super().__init__(dictionary)
        self.gain = nn.Parameter(dictionary.new_ones(dictionary.shape[0]))

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.gain * torch.tanh(self.linear(X))


class ShrinkEncoder(TanhEncoder):
    """:math:`F(x) = g \\odot h_\\theta(xW^T + b)`, learned thresholds (initially ``alpha``).

    Parameters
    ----------
    dictionary : torch.Tensor, shape (n_components, n_features)
    alpha : float
        Initial threshold.
    positive : bool
        Non-negative shrinkage.
    """

    def __init__(self, dictionary: torch.Tensor, alpha: float = 1.0, positive: bool = False, **_):
        super().__init__(dictionary)
        self.threshold = nn.Parameter(dictionary.new_full((dictionary.shape[0],), float(alpha)))
        self.positive = positive

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        return self.gain * shrink(self.linear(X), self.threshold, self.positive)


ENCODERS = {"tanh": TanhEncoder, "shrink": ShrinkEncoder, "linear": LinearEncoder}


class PSD(nn.Module):
    """An encoder :math:`F` and a decoder :math:`D` (rows are atoms) trained jointly.

    Parameters
    ----------
    dictionary : torch.Tensor, shape (n_components, n_features)
        Initial decoder; also initialises the encoder's filters.
    encoder : {"tanh", "shrink", "linear"}, default="tanh"
    alpha : float, default=1.0
        Initial threshold of the shrinkage encoder.
    positive : bool, default=False
        Non-negative shrinkage encoder.

    Examples
    --------
    >>> model = PSD(torch.eye(3), encoder="linear")
    >>> model.decode(model(torch.ones(1, 3))).shape
    torch.Size([1, 3])
    """

    def __init__(
        self,
        dictionary: torch.Tensor,
        encoder: str = "tanh",
        alpha: float = 1.0,
        positive: bool = False,
    ):
        super().__init__()
        if encoder not in ENCODERS:
            raise ValueError(f"encoder={encoder!r} is not one of {sorted(ENCODERS)}.")
        self.dictionary = nn.Parameter(dictionary.detach().clone())
        self.encoder = ENCODERS[encoder](dictionary, alpha=alpha, positive=positive)

    def forward(self, X: torch.Tensor) -> torch.Tensor:
        """The predicted codes :math:`F(x)`."""
        return self.encoder(X)

    def decode(self, Z: torch.Tensor) -> torch.Tensor:
        """Reconstruction :math:`zD`."""
        return Z @ self.dictionary
