"""The dependency runs one way: estimators -> sparsecode -> torch."""

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_importing_the_engine_does_not_import_sklearn():
    code = "import sys, sparsecode, sparsecode.training.optim, sparsecode.models; print('sklearn' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _imports(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def test_engine_never_imports_sklearn_or_estimators():
    for path in (ROOT / "sparsecode").rglob("*.py"):
        bad = [m for m in _imports(path) if m.split(".")[0] in ("sklearn", "estimators")]
        assert not bad, f"{path.relative_to(ROOT)} imports {bad}"


def test_estimators_define_no_torch_modules():
    """Learned encoders are nn.Modules in sparsecode.models; estimators hold no architecture."""
    for path in (ROOT / "estimators").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = [ast.unparse(b) for b in node.bases]
                assert not any("Module" in b for b in bases), f"{path.name}: {node.name}({bases})"


def test_estimators_import_no_private_engine_module():
    """The estimators use the engine's public modules only (no ``sparsecode._x`` or ``sparsecode.a._y``)."""
    for path in (ROOT / "estimators").rglob("*.py"):
        private = [m for m in _imports(path)
                   if m.split(".")[0] == "sparsecode" and any(part.startswith("_") for part in m.split(".")[1:])]
        assert not private, f"{path.relative_to(ROOT)} imports {private}"
