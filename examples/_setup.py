"""What every example shares: its command line, its quick mode and where it saves its figures.

Each example runs in full by default; ``--quick`` (or ``SPARSECODE_QUICK=1`` in the environment) runs a
smaller version for a smoke test, which saves its figures under ``output/quick/`` so that it never
overwrites the full run's pictures in ``output/``. Figures are drawn off-screen (matplotlib's Agg).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

__all__ = ["REPOSITORY", "example_setup", "save_figure"]

REPOSITORY = Path(__file__).resolve().parents[1]
"""The repository's root (for examples that reuse a benchmark's code)."""


def example_setup(doc: str, *, device: bool = False) -> tuple[bool, str, Path]:
    """Parse the example's command line; returns ``(quick, device, output folder)``.

    Parameters
    ----------
    doc : str or None
        The example's module docstring; its title describes the example in ``--help``.
    device : bool, default=False
        Offer ``--device`` ("auto", "cpu" or "cuda"); examples that pin the CPU leave it out.
    """
    title = next((line for line in (doc or "").strip().splitlines() if line.strip("= ")), None)
    parser = argparse.ArgumentParser(description=title)
    parser.add_argument("--quick", action="store_true", help="a smaller, faster run (figures in output/quick/)")
    if device:
        parser.add_argument("--device", default="auto", help="'auto', 'cpu' or 'cuda'")
    args = parser.parse_args()
    quick = args.quick or os.environ.get("SPARSECODE_QUICK") == "1"
    out = REPOSITORY / "examples" / "output" / ("quick" if quick else "")
    out.mkdir(parents=True, exist_ok=True)
    return quick, getattr(args, "device", "cpu"), out


def save_figure(fig, path: Path, dpi: int = 100) -> None:
    """Save ``fig`` to ``path`` and say where."""
    fig.savefig(path, dpi=dpi)
    print(f"saved {path}")
