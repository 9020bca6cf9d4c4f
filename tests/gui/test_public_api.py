"""The app imports only the engine's public API (mbrs_engine.PUBLIC_MODULES) and never PyTorch: no networks,
noise layers or tensors in the GUI."""
from __future__ import annotations

import ast
import importlib
import importlib.util
from pathlib import Path

import pytest

import mbrs_engine
import mbrs_gui

GUI_FILES = sorted(Path(mbrs_gui.__file__).parent.rglob("*.py"))


def _imports(path: Path):
    """(module, names or None) of every import in a file, wherever it is (functions included)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module, {a.name for a in node.names}


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # an attribute of a module, not a submodule
        return False


@pytest.mark.parametrize("path", GUI_FILES, ids=lambda p: p.relative_to(Path(mbrs_gui.__file__).parent).as_posix())
def test_the_gui_uses_only_the_public_engine_api(path):
    public = mbrs_engine.PUBLIC_MODULES
    for module, names in _imports(path):
        assert module.split(".")[0] != "torch", f"{path.name} imports torch"
        if module.split(".")[0] != "mbrs_engine":
            continue
        assert module in public, f"{path.name} imports {module}, which is not public"
        for name in names or ():
            if _is_module(f"{module}.{name}"):
                assert f"{module}.{name}" in public, f"{path.name} imports {module}.{name}, which is not public"
            elif public[module] is not None:
                assert name in public[module], f"{path.name} takes {name} from {module}"


@pytest.mark.parametrize("source, complaint", [
    ("def f():\n    from mbrs_engine.nets import Encoder\n", "not public"),
    ("import torch\n", "imports torch"),
    ("from mbrs_engine import nets\n", "not public"),
    ("from mbrs_engine.noise import Combined\n", "Combined"),
])
def test_the_check_catches_an_internal_import(tmp_path, source, complaint):
    bad = tmp_path / "bad.py"
    bad.write_text(source)
    with pytest.raises(AssertionError, match=complaint):
        test_the_gui_uses_only_the_public_engine_api(bad)


def test_every_public_module_imports():
    for module in mbrs_engine.PUBLIC_MODULES:
        importlib.import_module(module)
