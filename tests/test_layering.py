"""Package layering and light imports, as the architecture fixes them (README, Architecture).

`assay` <- `raters`, `clustering` <- `selector` <- `serve`: a package imports only from
packages to its left at module level; `import raters` (etc.) pulls no torch, vllm, faiss,
bentoml or ray.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
ORDER = {"assay": 0, "raters": 1, "clustering": 1, "selector": 2, "serve": 3}
HEAVY = ("torch", "vllm", "faiss", "bentoml", "ray", "transformers", "sklearn", "lightgbm")


def _module_level_imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in tree.body:  # module level only; imports inside functions are lazy
        if isinstance(node, ast.Import):
            names |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(ORDER))
def test_packages_import_only_to_their_left(package):
    for path in sorted((REPO / package).rglob("*.py")):
        for name in _module_level_imports(path):
            if name in ORDER and name != package:
                assert ORDER[name] < ORDER[package], f"{path.relative_to(REPO)} imports {name}"
            assert name not in HEAVY, f"{path.relative_to(REPO)} imports {name} at module level"


def test_importing_every_package_pulls_no_heavy_dependency():
    code = (
        "import sys, pkgutil, importlib\n"
        "for pkg in ['assay', 'raters', 'clustering', 'selector', 'serve']:\n"
        "    m = importlib.import_module(pkg)\n"
        "    for info in pkgutil.iter_modules(m.__path__):\n"
        "        if info.name not in ('__main__',):\n"
        "            importlib.import_module(f'{pkg}.{info.name}')\n"
        f"heavy = [n for n in {HEAVY!r} if n in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)
