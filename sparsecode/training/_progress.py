"""The progress bar of ``verbose=2``: tqdm when installed, else a text line on stderr."""

from __future__ import annotations

import sys

__all__ = ["Progress"]


class Progress:
    """A progress bar over the ``total`` steps of a pass, labelled ``desc``."""

    def __init__(self, total: int, desc: str):
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        self._bar = tqdm(total=total, desc=desc, leave=False) if tqdm is not None else None
        self._total, self._done, self._desc = total, 0, desc

    def update(self) -> None:
        """Count one step."""
        self._done += 1
        if self._bar is not None:
            self._bar.update()
        else:
            filled = int(30 * self._done / max(self._total, 1))
            bar = "#" * filled + "." * (30 - filled)
            sys.stderr.write(f"\r{self._desc} [{bar}] {self._done}/{self._total}")

    def close(self) -> None:
        """Remove the bar."""
        if self._bar is not None:
            self._bar.close()
        else:
            sys.stderr.write("\r" + " " * (len(self._desc) + 45) + "\r")
