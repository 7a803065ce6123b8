"""
Learning rates from the Hessian, and the shared optimizers
==========================================================

Left: batch gradient descent on a 2-input linear unit, ``E(w) = 1/(2P) sum_p (y_p - w.x_p)^2``,
whose Hessian is the input covariance ``H = (1/P) sum_p x_p x_p^T``. With
``eta_opt = 1/lambda_max`` (LeCun's lectures), rates below ``eta_opt`` creep, ``eta_opt`` is
fastest along the stiff direction, rates between ``eta_opt`` and ``2 eta_opt`` oscillate while
converging, and ``2 eta_opt`` oscillates forever (above it, the fit diverges).

Right: SGD, momentum, Adam, SDLM and ASGD on one problem (logistic regression on the digits),
each at ``learning_rate="auto"``, through the one training loop
:func:`sparsecode.training.fit_module`.
"""

# %%

import matplotlib.pyplot as plt
import numpy as np
import torch
from _setup import example_setup, save_figure
from sklearn.datasets import load_digits

from sparsecode.training import fit_module
from sparsecode.training.optim import estimate_max_learning_rate, softmax_residuals

_, _, OUT = example_setup(__doc__)

# %%
# A 2-input linear unit with correlated inputs
# --------------------------------------------
g = torch.Generator().manual_seed(0)
X = torch.randn(500, 2, generator=g, dtype=torch.float64) @ torch.tensor(
    [[1.0, 0.0], [0.5, 0.7]], dtype=torch.float64
)
w_true = torch.tensor([1.0, -1.0], dtype=torch.float64)
y = X @ w_true
H = X.T @ X / len(X)


def mse(module, x, t):
    return 0.5 * ((module(x).squeeze(1) - t) ** 2).mean()


def unit(w0):
    lin = torch.nn.Linear(2, 1, bias=False).double()
    with torch.no_grad():
        lin.weight.copy_(w0)
    return lin


w0 = torch.tensor([[-1.5, 1.0]], dtype=torch.float64)
est = estimate_max_learning_rate(unit(w0), mse, (X, y), tol=1e-10)
lam = float(torch.linalg.eigvalsh(H)[-1])
eta_opt = est.learning_rate
print(f"lambda_max: power method {est.lambda_max:.5f}, eigvalsh {lam:.5f}; eta_opt = {eta_opt:.4f}")

paths = {}
for factor in (0.5, 1.0, 1.5, 2.0):
    lin, trail = unit(w0), [w0.reshape(-1).numpy().copy()]
    fit_module(
        lin, mse, (X, y), optimizer="sgd", learning_rate=factor * eta_opt, max_iter=12,
        batch_size=None, shuffle=False, tol=0.0,
        projection=lambda m: trail.append(m.weight.detach().reshape(-1).numpy().copy()),
    )
    paths[factor] = np.array(trail)
    print(f"eta = {factor:.1f} eta_opt: distance to w* after 12 steps "
          f"{np.linalg.norm(trail[-1] - w_true.numpy()):.3g}")

# %%
# The shared optimizers on one problem
# ------------------------------------
Xd, yd = load_digits(return_X_y=True)
Xd = torch.tensor((Xd - Xd.mean(0)) / (Xd.std(0) + 1.0))
yd = torch.tensor(yd)


def cross_entropy(module, x, t):
    return torch.nn.functional.cross_entropy(module(x), t)


curves = {}
for name in ("sgd", "momentum", "adam", "sdlm", "asgd"):
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 10).double()
    result = fit_module(
        model, cross_entropy, (Xd, yd), optimizer=name, learning_rate="auto", max_iter=8,
        batch_size=64, tol=0.0, residual_fn=lambda m, x, t: softmax_residuals(m(x)),
        generator=torch.Generator().manual_seed(0),
    )
    curves[name] = result.loss_curve
    print(f"{name:9s} rate {result.learning_rate:.4g}: loss {result.loss_curve[0]:.4f} -> "
          f"{result.loss_curve[-1]:.4f}")

# %%
# Figure
# ------
fig, (ax0, ax1) = plt.subplots(1, 2, figsize=(11, 4.5))
a, b = np.meshgrid(np.linspace(-2.5, 2.5, 200), np.linspace(-3.5, 2.5, 200))
W = np.stack([a.ravel(), b.ravel()], 1) - w_true.numpy()
E = 0.5 * np.einsum("ni,ij,nj->n", W, H.numpy(), W).reshape(a.shape)
ax0.contour(a, b, E, levels=np.geomspace(1e-3, E.max(), 15), colors="0.8")
for factor, trail in paths.items():
    ax0.plot(trail[:, 0], trail[:, 1], "o-", ms=3, label=f"{factor:g} $\\eta_{{opt}}$")
ax0.plot(*w_true.numpy(), "k*", ms=12)
ax0.set(title="Batch gradient descent, 12 steps", xlabel="$w_1$", ylabel="$w_2$")
ax0.legend()
for name, curve in curves.items():
    ax1.plot(np.arange(1, len(curve) + 1), curve, label=name)
ax1.set(title='Digits logistic regression, learning_rate="auto"', xlabel="pass",
        ylabel="mean training loss", yscale="log")
ax1.legend()
fig.tight_layout()
save_figure(fig, OUT / "plot_learning_rates.png", dpi=100)
