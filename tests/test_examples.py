"""Every example runs (in its quick mode) and saves a figure."""

import os
import pathlib
import subprocess
import sys
import time

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("plot_*.py"))


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_and_saves_a_figure(script):
    start = time.time()
    env = dict(os.environ, SPARSECODE_QUICK="1", MPLBACKEND="Agg", OMP_NUM_THREADS="1",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(script), "--quick"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.strip(), "an example says what it does"
    if script.name == "plot_distributed.py":  # it starts its two ranks itself, through torchrun
        assert "[rank 0/2]" in proc.stdout and "[rank 1/2]" in proc.stdout, proc.stdout[-3000:]
    saved = [p for p in (ROOT / "examples" / "output" / "quick").glob("*.png") if p.stat().st_mtime >= start - 1]
    assert saved, "an example saves at least one figure (quick mode: in examples/output/quick/)"
