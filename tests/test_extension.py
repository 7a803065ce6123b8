"""The compiled CPU kernels' build: keyed by content, shared by every copy of the source, built once."""

import os
import shutil
import subprocess
import sys
import time
import warnings
from pathlib import Path

import pytest

from sparsecode._extension import KERNEL_DIR, build_directory, compiled_kernels, kernel_name, load_kernels

needs_compiler = pytest.mark.skipif(shutil.which("c++") is None or os.environ.get("SPARSECODE_EXTENSION") == "0",
                                    reason="no C++ compiler, or the extension is switched off")
ROOT = Path(__file__).resolve().parents[1]


def _run(code: str) -> subprocess.CompletedProcess:
    """``python -c code`` in a fresh process, from the repository root, as a user would run it."""
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=600)


def test_the_name_follows_the_content_not_the_path(tmp_path):
    copy = tmp_path / "elsewhere"
    shutil.copytree(KERNEL_DIR, copy)
    assert kernel_name(copy) == kernel_name(KERNEL_DIR)
    assert kernel_name(copy).startswith("sparsecode_cpu_kernels_")
    names = {kernel_name(KERNEL_DIR)}
    for changed in ("common.h", "cd.cpp", "renamed"):  # a header counts as much as a source, and so do names
        shutil.rmtree(copy)
        shutil.copytree(KERNEL_DIR, copy)
        if changed == "renamed":
            (copy / "cd.cpp").rename(copy / "cd2.cpp")
        else:
            (copy / changed).write_bytes((KERNEL_DIR / changed).read_bytes() + b"\n// changed\n")
        names.add(kernel_name(copy))
    assert len(names) == 4


def test_a_folder_without_sources_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no C\+\+ source"):
        load_kernels(tmp_path)


def test_the_build_directory_follows_torch_extensions_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    assert build_directory("sparsecode_cpu_kernels_0") == tmp_path / "sparsecode_cpu_kernels_0"


@needs_compiler
def test_the_build_command_builds_and_says_where():
    done = subprocess.run([sys.executable, "-m", "sparsecode.build_kernels"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert str(build_directory(kernel_name())) in done.stdout


@needs_compiler
@pytest.mark.skipif(shutil.which("ninja", path=os.defpath) is not None
                    or shutil.which("c++", path=os.defpath) is None,
                    reason="ninja is on the default PATH, or the compiler is not")
def test_the_build_finds_the_installed_ninja_off_the_path():
    done = subprocess.run([sys.executable, "-m", "sparsecode.build_kernels"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "PATH": os.defpath})
    assert done.returncode == 0, done.stderr


@needs_compiler
def test_another_copy_of_the_source_loads_the_same_build_without_compiling(tmp_path):
    assert _run("from sparsecode._extension import load_kernels; load_kernels()").returncode == 0
    library = next(build_directory(kernel_name()).glob("sparsecode_cpu_kernels_*.*"))
    built = library.stat().st_mtime_ns
    copy = tmp_path / "kernels"
    shutil.copytree(KERNEL_DIR, copy)  # newer files at another path: what a second install looks like
    start = time.perf_counter()
    done = _run(f"from sparsecode._extension import load_kernels; print(load_kernels({str(copy)!r}).__file__)")
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(library)
    assert "compiling" not in done.stderr
    assert library.stat().st_mtime_ns == built
    assert elapsed < 20  # an import of torch, not a compilation


def test_the_build_command_fails_with_the_reason(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.touch()  # a cache root that is a file: the build directory cannot be made
    done = subprocess.run([sys.executable, "-m", "sparsecode.build_kernels"], cwd=ROOT, capture_output=True,
                          text=True, timeout=600, env={**os.environ, "TORCH_EXTENSIONS_DIR": str(blocker)})
    assert done.returncode == 1
    assert "could not be built" in done.stderr and str(blocker) in done.stderr


@pytest.mark.parametrize("setting", ["switched off", "unbuildable"])
def test_without_the_kernels_the_torch_versions_run(monkeypatch, tmp_path, setting):
    if setting == "switched off":
        monkeypatch.setenv("SPARSECODE_EXTENSION", "0")
    else:
        monkeypatch.delenv("SPARSECODE_EXTENSION", raising=False)
        (tmp_path / "a_file").touch()
        monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path / "a_file"))
    compiled_kernels.cache_clear()
    try:
        if setting == "switched off":
            assert compiled_kernels() is None
        else:
            with pytest.warns(RuntimeWarning, match="could not be built"):
                assert compiled_kernels() is None
            with warnings.catch_warnings():
                warnings.simplefilter("error")  # warned once: the answer is kept for the process
                assert compiled_kernels() is None
    finally:
        compiled_kernels.cache_clear()
