"""Sphinx configuration: ``python -m sphinx -b html docs docs/_build`` from the repository root.

The gallery runs every example in its quick mode (``SPARSECODE_QUICK=1``), on the CPU.
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "examples")]
os.environ["SPARSECODE_QUICK"] = "1"
os.environ.setdefault("OMP_NUM_THREADS", "1")

import sparsecode  # noqa: E402

project = "sparsecode"
author = "the sparsecode developers"
copyright = "2026, the sparsecode developers"
release = version = sparsecode.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build", "auto_examples/*.ipynb", "auto_examples/*.py", "auto_examples/*.zip"]
templates_path = ["_templates"]
autosummary_generate = True
_SKLEARN_PLUMBING = [f"set_{m}_request" for m in ("fit", "partial_fit", "predict", "score", "transform",
                                                       "inverse_transform", "predict_proba")]
# keep the estimators' hints readable: ``X: ArrayLike``, not numpy's expanded union
autodoc_type_aliases = {"ArrayLike": "numpy.typing.ArrayLike", "Self": "typing_extensions.Self"}
autodoc_default_options = {"members": True, "exclude-members": ", ".join(["set_output", *_SKLEARN_PLUMBING])}
numpydoc_show_class_members = False
numpydoc_show_inherited_class_members = False
numpydoc_class_members_toctree = False
html_theme = "alabaster"
html_static_path = []

sphinx_gallery_conf = {
    "examples_dirs": str(ROOT / "examples"),
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_",
    "ignore_pattern": r"_setup\.py",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
}
