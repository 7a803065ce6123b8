"""Compiled CPU kernels (the C++ sources in ``sparsecode/kernels/``), built on first use by torch's JIT
extension tools.

Loops that are sequential per sample or per atom cost far more in dispatched torch ops than their
arithmetic on the CPU: the homotopy and LARS paths (:mod:`sparsecode.solvers.homotopy`), cyclic coordinate
descent (:mod:`sparsecode.solvers.cd`), FISTA's working sets (:mod:`sparsecode.solvers.working_set`),
orthogonal matching pursuit (:mod:`sparsecode.solvers.greedy`) and the dictionary's block-coordinate sweep
(:func:`sparsecode.dictionary.update_dictionary`). One ``.cpp`` file per kernel (``homotopy``, ``cd`` with
its active-set solve in ``cd_active_set.h``, ``fista``, which polishes with that active set, ``omp``,
``dictionary``), ``common.h`` for what they share and
``module.cpp`` for the Python bindings; ninja compiles the files in parallel. The build needs a C++
compiler and ninja and takes about a minute; ``python -m sparsecode.build_kernels`` runs it ahead of time.

The build is keyed by content, not by path: its name and directory carry a hash of the sources and
headers, the compiler flags, the torch version and the Python ABI, under ``$TORCH_EXTENSIONS_DIR`` (by
default ``~/.cache/torch_extensions``), and the compiler reads copies of the sources kept in that directory.
Every copy of the same sources (a clone, site-packages, another virtual environment with the same torch)
thus loads one build, made once per machine; a changed source or header gets a build of its own.
Concurrent first builds queue on torch's lock file in the build directory. Where the kernels cannot be
built, or with ``SPARSECODE_EXTENSION=0``, the torch versions run instead; they are also what runs on
accelerators.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import sysconfig
import time
import warnings
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import torch

__all__ = ["KERNEL_DIR", "kernel_sources", "kernel_name", "build_directory", "load_kernels", "compiled_kernels"]

KERNEL_DIR = Path(__file__).with_name("kernels")
_SUFFIXES = (".cpp", ".h")
# 512-bit vectors where the processor has them (GCC prefers 256 otherwise): the homotopy's correlation update,
# its inner loop, runs 1.1x faster on dense 16x16 codes
_CFLAGS = ("-O3", "-march=native", "-mprefer-vector-width=512", "-fopenmp")
_LDFLAGS = ("-fopenmp",)


def kernel_sources(directory: str | os.PathLike[str] = KERNEL_DIR) -> dict[str, bytes]:
    """The kernels' C++ sources and headers.

    Parameters
    ----------
    directory : str or path-like, default=KERNEL_DIR
        The folder holding them (``.cpp`` and ``.h`` files, in it or below it).

    Returns
    -------
    sources : dict of str to bytes
        Each file's content under its path relative to ``directory`` (``/``-separated), sorted by path.

    Raises
    ------
    FileNotFoundError
        Where ``directory`` holds no ``.cpp`` file.
    """
    root = Path(directory)
    files = sorted(p for p in root.rglob("*") if p.suffix in _SUFFIXES and p.is_file())
    if not any(p.suffix == ".cpp" for p in files):
        raise FileNotFoundError(f"no C++ source (.cpp) in {root}: pass the folder holding the kernels' sources")
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in files}


def kernel_name(directory: str | os.PathLike[str] = KERNEL_DIR) -> str:
    """Name of the extension built from the sources in ``directory``, keyed by everything the binary depends on.

    Parameters
    ----------
    directory : str or path-like, default=KERNEL_DIR
        The folder holding the C++ sources and headers (see :func:`kernel_sources`).

    Returns
    -------
    name : str
        ``sparsecode_cpu_kernels_<hash>``: the first 12 hex digits of the SHA-256 of every source and
        header (relative path and bytes, sorted by path), the compiler and linker flags, the torch version and
        the Python extension suffix (interpreter, version, ABI, platform). Two folders with the same files
        give the same name, wherever they are.
    """
    key = hashlib.sha256()
    for relative, code in kernel_sources(directory).items():
        for part in (relative.encode(), len(code).to_bytes(8, "little"), code):
            key.update(part)
    for part in (*_CFLAGS, "|", *_LDFLAGS, "|", torch.__version__, sysconfig.get_config_var("EXT_SUFFIX") or ""):
        key.update(part.encode() + b"\0")
    return f"sparsecode_cpu_kernels_{key.hexdigest()[:12]}"


def build_directory(name: str) -> Path:
    """Directory holding the build called ``name``.

    Parameters
    ----------
    name : str
        The extension's name, from :func:`kernel_name`.

    Returns
    -------
    directory : Path
        ``$TORCH_EXTENSIONS_DIR/<name>``, or torch's default root (``~/.cache/torch_extensions``, following
        ``XDG_CACHE_HOME``) when the variable is unset. The name already carries the torch and Python
        versions, so no per-version subfolder is added.
    """
    from torch.utils.cpp_extension import get_default_build_root

    return Path(os.environ.get("TORCH_EXTENSIONS_DIR") or get_default_build_root()) / name


def _stage_source(code: bytes, staged: Path) -> Path:
    """The build directory's copy of one source or header, written once (ninja rebuilds when a source's path or
    mtime changes, so every copy of the package must hand the compiler these files)."""
    staged.parent.mkdir(parents=True, exist_ok=True)
    if staged.is_file() and staged.read_bytes() == code:
        return staged
    scratch = staged.with_name(f".{staged.name}.{os.getpid()}.tmp")
    scratch.write_bytes(code)
    try:
        os.link(scratch, staged)  # creates it only where absent: a concurrent build never sees its mtime move
    except FileExistsError:
        if staged.read_bytes() != code:  # a damaged copy
            os.replace(scratch, staged)
    except OSError:  # a file system without hard links
        os.replace(scratch, staged)
    finally:
        scratch.unlink(missing_ok=True)
    return staged


def _find_ninja() -> None:
    """Put the ``ninja`` that the install brings on ``PATH`` where it is missing there (a virtual
    environment's python run without activating it), since torch looks for it on ``PATH`` only."""
    if shutil.which("ninja") is None:
        try:
            import ninja
        except ImportError:
            return
        os.environ["PATH"] = os.pathsep.join(filter(None, [os.environ.get("PATH"), ninja.BIN_DIR]))


def load_kernels(directory: str | os.PathLike[str] = KERNEL_DIR) -> ModuleType:
    """Build the kernels where no build of this content exists yet, and import them.

    A build announces itself on stderr before it starts and reports its time after it ends; loading an
    existing build prints nothing.

    Parameters
    ----------
    directory : str or path-like, default=KERNEL_DIR
        The folder holding the C++ sources and headers (see :func:`kernel_sources`); any copy of it with the
        same files reuses the same build.

    Returns
    -------
    module : ModuleType
        The extension module, with ``lasso_path``, ``cyclic_cd``, ``fista_working_sets``, ``batch_omp`` and
        ``bcd_sweep``.

    Raises
    ------
    Exception
        Whatever stops the build: no compiler or ninja (``RuntimeError``), a cache directory that cannot be
        written (``OSError``), a compiler error (``RuntimeError`` with its output), no source in
        ``directory`` (``FileNotFoundError``).
    """
    from torch.utils.cpp_extension import LIB_EXT, load

    _find_ninja()
    name = kernel_name(directory)
    build = build_directory(name)
    build.mkdir(parents=True, exist_ok=True)
    staged = [_stage_source(code, build / relative) for relative, code in kernel_sources(directory).items()]
    building = not (build / f"{name}{LIB_EXT}").exists()
    if building:
        lock = build / "lock"
        if lock.exists():  # torch's lock: another process is building, or one was killed building
            print(f"sparsecode: waiting for another process compiling the CPU kernels (delete {lock} if none "
                  "is running)...", file=sys.stderr, flush=True)
        else:
            print("sparsecode: compiling the CPU kernels (once per machine, about a minute)...", file=sys.stderr,
                  flush=True)
        start = time.perf_counter()
    module = load(name=name, sources=[str(path) for path in staged if path.suffix == ".cpp"],
                  extra_cflags=list(_CFLAGS), extra_ldflags=list(_LDFLAGS), build_directory=str(build))
    if building:
        print(f"sparsecode: compiled the CPU kernels in {time.perf_counter() - start:.0f} s, cached in "
              f"{build}", file=sys.stderr, flush=True)
    return module


@lru_cache(maxsize=1)
def compiled_kernels() -> ModuleType | None:
    """The extension module (``lasso_path``, ``cyclic_cd``, ``fista_working_sets``, ``batch_omp``, ``bcd_sweep``),
    or None where it is disabled or cannot be built.

    Returns
    -------
    module : ModuleType or None
        The module from :func:`load_kernels`, once per process; None with ``SPARSECODE_EXTENSION=0``, or
        after a failed build, which warns once.
    """
    if os.environ.get("SPARSECODE_EXTENSION", "1") == "0":
        return None
    try:
        return load_kernels()
    except Exception as exc:  # no compiler, no ninja, read-only cache...: the torch path still works
        warnings.warn(f"sparsecode: the compiled CPU kernels could not be built ({exc}); the slower torch "
                      "versions are used. Set SPARSECODE_EXTENSION=0 to skip the build.", RuntimeWarning,
                      stacklevel=3)
        return None
