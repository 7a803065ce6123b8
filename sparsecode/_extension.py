"""Compiled CPU kernels (``cpu_kernels.cpp``), built on first use by torch's JIT extension tools.

Two loops that are sequential per sample or per atom cost far more in dispatched torch ops than their
arithmetic on the CPU: the homotopy path (:mod:`sparsecode.solvers.homotopy`) and the dictionary's
block-coordinate sweep (:func:`sparsecode.dictionary.update_dictionary`). The build needs a C++ compiler
and ninja, takes about a minute once per machine and is cached (``$TORCH_EXTENSIONS_DIR``, by default
``~/.cache/torch_extensions``). Where it cannot be built, or with ``SPARSECODE_EXTENSION=0``, the torch
versions run instead; they are also what runs on accelerators.
"""

from __future__ import annotations

import os
import warnings
from functools import lru_cache
from pathlib import Path

__all__ = ["compiled_kernels"]


@lru_cache(maxsize=1)
def compiled_kernels():
    """The extension module (``lasso_path``, ``bcd_sweep``), or None where it is disabled or cannot be built."""
    if os.environ.get("SPARSECODE_EXTENSION", "1") == "0":
        return None
    try:
        from torch.utils.cpp_extension import load

        return load(name="sparsecode_cpu_kernels", sources=[str(Path(__file__).with_name("cpu_kernels.cpp"))],
                    extra_cflags=["-O3", "-march=native", "-fopenmp"], extra_ldflags=["-fopenmp"])
    except Exception as exc:  # no compiler, no ninja, read-only cache...: the torch path still works
        warnings.warn(f"sparsecode: the compiled CPU kernels could not be built ({exc}); the slower torch "
                      "versions are used. Set SPARSECODE_EXTENSION=0 to skip the build.", RuntimeWarning,
                      stacklevel=3)
        return None
