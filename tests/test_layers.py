"""Data flows one way (docs/ARCHITECTURE.md): nothing in avkit/engine, avkit/models, avkit/data or
avkit/io imports avkit.apps or avkit.cli, at module level, inside functions, or by a module name
handed to importlib. Checked by reading the source, so an import on a path no test runs counts too."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "avkit"
LOWER = ("engine", "models", "data", "io")
HIGHER = ("avkit.apps", "avkit.cli")


def imported_modules(source: str, package: str) -> list[tuple[int, str]]:
    """``(line, module)`` of every import in ``source`` (a module of ``package``): ``import x``,
    ``from x import y`` (relative ones resolved; ``from avkit import apps`` counts as ``avkit.apps``),
    and string names given to ``importlib.import_module`` / ``__import__`` / ``import_module``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            found.append((node.lineno, base))
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def violations(root: Path = ROOT) -> list[str]:
    out = []
    for layer in LOWER:
        for path in sorted((root / layer).rglob("*.py")):
            package = ".".join(("avkit",) + path.relative_to(root).parent.parts)
            for line, module in imported_modules(path.read_text(encoding="utf-8"), package):
                if any(module == h or module.startswith(h + ".") for h in HIGHER):
                    out.append(f"{path.relative_to(root.parent)}:{line} imports {module}")
    return out


def test_lower_layers_never_import_apps_or_cli() -> None:
    assert violations() == []


@pytest.mark.parametrize("code", [
    "import avkit.apps.separation",
    "def f():\n    from avkit.cli.main import main\n",
    "from avkit import apps\n",
    "from ..apps import captioning\n",
    "import importlib\nimportlib.import_module('avkit.apps.video_llm')\n",
    "def g():\n    __import__('avkit.cli')\n",
])
def test_the_checker_sees_every_kind_of_import(tmp_path: Path, code: str) -> None:
    fake = tmp_path / "avkit"
    for layer in LOWER:
        (fake / layer).mkdir(parents=True)
    (fake / "engine" / "clean.py").write_text("import torch\nfrom avkit.engine import step\n")
    assert violations(fake) == []
    (fake / "engine" / "leaky.py").write_text(code)
    assert len(violations(fake)) >= 1
