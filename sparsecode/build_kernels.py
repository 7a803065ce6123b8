"""Build the compiled CPU kernels ahead of time: ``python -m sparsecode.build_kernels``.

Builds sparsecode's compiled CPU kernels (about a minute), or finds the build made earlier for the same
sources, compiler flags, torch and Python, then prints where it lives and how long this took. Exits 1 with
the reason where the kernels cannot be built (no C++ compiler, no ninja, a cache that cannot be written);
the library then runs the torch versions instead. Run it once after installing, or in CI before the tests,
so that no first call pays for the build.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from ._extension import load_kernels

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    """Build or find the kernels and report on them.

    Parameters
    ----------
    argv : list of str, optional
        Command-line arguments (none are accepted besides ``--help``); default ``sys.argv[1:]``.

    Returns
    -------
    status : int
        0 where the kernels are built and load, 1 otherwise.
    """
    argparse.ArgumentParser(prog="python -m sparsecode.build_kernels",
                            description=__doc__.split("\n\n")[1]).parse_args(argv)
    start = time.perf_counter()
    try:
        module = load_kernels()
    except Exception as exc:
        print(f"sparsecode: the CPU kernels could not be built: {exc}", file=sys.stderr)
        return 1
    print(f"sparsecode: CPU kernels ready ({time.perf_counter() - start:.1f} s): {module.__file__}")
    if os.environ.get("SPARSECODE_EXTENSION", "1") == "0":
        print("sparsecode: SPARSECODE_EXTENSION=0 is set, so the library will not use them")
    return 0


if __name__ == "__main__":
    sys.exit(main())
