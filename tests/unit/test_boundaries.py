"""Imports point one way: producer -> shared <- workers.

A producer installs without the machine-learning stack (`pip install mlqueue`), so no
producer module may import worker code, scikit-learn, ONNX Runtime, pandas, matplotlib
or Flower; and neither shared code nor workers may import the producer.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ML_STACK = {"workers", "sklearn", "joblib", "onnxruntime", "skl2onnx", "onnx", "pandas", "flower"}


def imported_packages(path: Path) -> set[str]:
    """Top-level packages a module imports, at any depth of its code (lazy imports too)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("producer", ML_STACK | {"matplotlib"}),
        ("shared", ML_STACK | {"producer", "matplotlib"}),
        ("workers", {"producer"}),
    ],
)
def test_imports_point_one_way(package: str, forbidden: set[str]) -> None:
    offenders = {}
    for path in modules(package):
        name = str(path.relative_to(ROOT))
        # The one exception: the A/B plot draws with matplotlib (the `plot` extra).
        allowed = {"matplotlib"} if name == "producer/ab_plot.py" else set()
        if bad := imported_packages(path) & (forbidden - allowed):
            offenders[name] = sorted(bad)
    assert not offenders


def test_the_check_finds_an_import_hidden_in_a_function(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from workers.tasks import predict\n    import sklearn.base\n")
    assert imported_packages(module) == {"workers", "sklearn"}


def test_importing_every_producer_module_loads_no_worker_code() -> None:
    names = [
        ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for path in modules("producer")
        if path.name != "__main__.py"
    ]
    code = (
        "import importlib, sys\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "from producer.cli.main import cli\n"
        "cli.list_commands(None)\n"
        "loaded = {m.split('.')[0] for m in sys.modules}\n"
        f"bad = sorted(loaded & set({sorted(ML_STACK)!r}))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
