"""Sphinx configuration: the API reference, built from the docstrings (NumPy style) by ``make docs``."""

from __future__ import annotations

import intake_resonance

project = "intake-resonance"
author = "the intake-resonance developers"
copyright = "the intake-resonance developers"  # noqa: A001 - Sphinx's name
release = intake_resonance.__version__
extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon"]
napoleon_google_docstring = False
napoleon_numpy_docstring = True
napoleon_use_rtype = False
# "path" in a parameter type means a file path, not one of the classes with a .path attribute.
napoleon_preprocess_types = True
napoleon_type_aliases = {"path": "str or os.PathLike"}
autodoc_typehints = "description"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
# Names in signatures and docstrings that belong to our dependencies are not cross-referenced here.
nitpicky = False
exclude_patterns = ["_build"]
html_theme = "alabaster"
