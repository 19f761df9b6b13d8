"""Package-level rules: public API, doctests, no imports from the app layers."""
import ast
import doctest
import importlib
from pathlib import Path

import pytest

import analysis

MODULES = sorted(f"analysis.{p.stem}" for p in Path(analysis.__file__).parent.glob("*.py")
                 if not p.stem.startswith("_"))


def test_public_api_is_exported():
    for name in analysis.__all__:
        assert hasattr(analysis, name), name


@pytest.mark.parametrize("module", MODULES)
def test_docstring_examples(module):
    result = doctest.testmod(importlib.import_module(module), extraglobs={"pd": __import__("pandas")})
    assert result.failed == 0


def test_no_app_imports():
    root = Path(analysis.__file__).parent
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                assert name.split(".")[0] not in {"flask", "sqlalchemy", "survey_service"}, (path.name, name)
