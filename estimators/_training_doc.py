"""The numpydoc entries of the training parameters every trained estimator shares, written once."""

from __future__ import annotations

import inspect
import textwrap

__all__ = ["training_parameters_doc"]

# name -> (type, description); the default comes from each estimator's own signature
_TRAINING_PARAMETERS_DOC = {
    "optimizer": (
        '{"sgd", "momentum", "nesterov", "asgd", "rmsprop", "adam", "sdlm", "lbfgs"} or '
        "torch.optim.Optimizer subclass",
        """\
        Optimizer of the training loop (:data:`sparsecode.training.optim.OPTIMIZERS`). "momentum" and
        "nesterov" use momentum 0.9; "asgd" keeps the averaged weights; "sdlm" scales each weight's
        rate by its Gauss-Newton curvature; "lbfgs" uses a strong-Wolfe line search.""",
    ),
    "learning_rate": (
        'float or "auto"',
        """\
        Base rate. "auto" derives it from the largest Hessian eigenvalue (power method):
        1/lambda_max for "sgd" and "asgd", (1 - 0.9)/lambda_max for "momentum"/"nesterov",
        1/lambda_max of the preconditioned Hessian for "sdlm", RMS gradient/lambda_max for
        "adam"/"rmsprop", and 1 for "lbfgs". The resolved value is ``learning_rate_``.""",
    ),
    "max_iter": ("int", "Maximum number of passes over the training data (0 is allowed)."),
    "batch_size": ("int or None", "Minibatch size; None uses the whole training set per step."),
    "tol": (
        "float",
        """\
        Training stops when the loss (the validation loss with ``early_stopping``) has not improved
        by at least ``tol`` for more than ``n_iter_no_change`` passes.""",
    ),
    "n_iter_no_change": ("int", "Passes without improvement tolerated before stopping."),
    "early_stopping": (
        "bool",
        """\
        Hold out ``validation_fraction`` of the training data, stop on its loss and keep the
        parameters of the best pass.""",
    ),
    "validation_fraction": ("float", "Fraction held out when ``early_stopping`` is True."),
    "warm_start": (
        "bool",
        "Continue the previous fit (same optimizer, counters and curves) instead of restarting.",
    ),
    "verbose": ("int", "1 prints a line per pass, 2 also a progress bar."),
    "random_state": (
        "int, RandomState instance or None",
        "Seeds the minibatch order and the validation split.",
    ),
    "device": (
        '{"auto", "cpu", "cuda", "cuda:N"}, torch.device or None',
        """\
        Where the computation runs. ``"auto"`` (or None) uses CUDA when available. Arrays go in and
        come out as numpy on the CPU whatever the device.""",
    ),
    "distributed": (
        '{"allreduce", "easgd", "eamsgd", "async_easgd", "async_eamsgd", "downpour"}, '
        'sparsecode.training.Distributed or None',
        """\
        Train on several processes of a ``torch.distributed`` process group (started by ``torchrun``),
        each rank calling ``fit`` on its own shard (shards may differ in size): "allreduce" averages
        the gradients at every step, "easgd" and "eamsgd" are elastic averaging SGD (with local
        Nesterov momentum); "async_easgd", "async_eamsgd" and "downpour" exchange with a parameter
        server on rank 0 every ``tau`` steps without waiting for the other workers (gloo). Every rank
        ends with the same model (:mod:`sparsecode.training.distributed`). None: this process alone.
        A rank whose shard fails validation makes the others raise ``PeerFailedError``; a rank that
        dies makes them raise ``PeerLostError`` within the process group's timeout, set by
        ``torch.distributed.init_process_group(timeout=datetime.timedelta(seconds=...))``
        (:mod:`sparsecode.training.faults`).""",
    ),
    "checkpoint": (
        "str, os.PathLike or None",
        """\
        A file where ``fit`` saves its state at the end of every pass (atomically; only rank 0 in a
        distributed fit): parameters, optimizer, counters, curves, random generators and the stage
        (pretraining or training). ``fit`` with an existing file resumes from it, losing at most one
        pass, and reaches the same model as an uninterrupted fit where the training is deterministic
        (one process or "allreduce", same ``random_state``). The file must come from the same class,
        the same parameters (``max_iter`` and ``verbose`` may change: a larger ``max_iter`` continues a
        finished fit), the same number of ranks and the same data on each (a hash of its values),
        else ``fit`` raises ValueError: delete the file or pass another path. Once the fit is
        finished, fitting again returns it; delete the file to train anew. The steps before training
        (a dictionary learned first, teacher codes) run again on resume
        (:mod:`sparsecode.training.checkpoint`).""",
    ),
}


def _format_default(value) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float):
        return f"{value:g}"
    return repr(value)


def training_parameters_doc(init, notes: dict[str, str] | None = None) -> str:
    """The numpydoc entries of the shared training parameters, with the defaults of ``init``.

    Parameters
    ----------
    init : callable
        An estimator's ``__init__``; its signature gives every default.
    notes : dict, optional
        Sentences appended to a parameter's entry (the estimator's own remarks on it).

    Returns
    -------
    str
        The entries, indented for a class docstring.
    """
    signature = inspect.signature(init).parameters
    notes = notes or {}
    lines = []
    for name, (kind, description) in _TRAINING_PARAMETERS_DOC.items():
        lines.append(f"    {name} : {kind}, default={_format_default(signature[name].default)}")
        body = textwrap.dedent(description)
        if name in notes:
            body += "\n" + textwrap.dedent(notes[name])
        lines.append(textwrap.indent(body.strip("\n"), " " * 8))
    return "\n".join(lines) + "\n"
