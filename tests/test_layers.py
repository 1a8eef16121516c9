"""The package layout is the architecture: each layer imports only from the layers below it (docs/design.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "aekit"

# bottom to top; a module may import from its own layer and from any layer listed before it
LAYERS = [
    {"errors", "_version", "seeding", "fileio", "config_base"},
    {"data"},
    {"nn"},
    {"metrics"},
    {"models"},
    {"train"},
    {"interop", "estimator"},
    {"worlds"},
    {"analysis"},
    {"report"},
    {"commands"},
    {"cli", "__main__"},
]
RANK = {name: rank for rank, layer in enumerate(LAYERS) for name in layer}


def _layer_of(dotted: str) -> str | None:
    """'aekit.nn.sparse_ops' -> 'nn'; the package root itself -> None."""
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else None


def _imports(path: Path, package_dir: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, absolute aekit module) for every import of aekit code in a file."""
    parts = path.relative_to(package_dir.parent).with_suffix("").parts
    package = list(parts if path.name == "__init__.py" else parts[:-1])
    if path.name == "__init__.py":
        package = package[:-1] if package[-1] == "__init__" else package
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                targets = [target] if node.module else [f"{target}.{alias.name}" for alias in node.names]
            elif node.module and node.module.split(".")[0] == "aekit":
                targets = [node.module]
            else:
                continue
            found += [(node.lineno, t) for t in targets]
        elif isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.split(".")[0] == "aekit"]
    return found


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def test_every_top_level_module_and_package_has_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    names = {p.stem for p in PACKAGE.glob("*.py")} | packages
    names.discard("__init__")
    assert names - RANK.keys() == set(), "place new top-level modules in LAYERS (and in docs/design.md)"


def _violations(path: Path, package_dir: Path = PACKAGE) -> list[str]:
    own = _layer_of(".".join(path.relative_to(package_dir.parent).with_suffix("").parts))
    violations = []
    for line, target in _imports(path, package_dir):
        layer = _layer_of(target)
        if layer not in RANK:  # `from .. import name` of something the root defines
            violations.append(f"line {line}: imports the package root (import from the module that defines it)")
        elif layer != own and RANK[layer] > RANK[own]:
            violations.append(f"line {line}: {own} imports {target} from a higher layer")
    return violations


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_point_down_only(path):
    assert _violations(path) == []


def test_the_checker_reports_upward_and_root_imports(tmp_path):
    """The rule can fail: an nn module importing models, or the package root, is reported line by line."""
    bad = tmp_path / "aekit" / "nn" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from ..models.sae import SAEConfig\nfrom .. import __version__\nfrom .codes import Codes\n"
                   "import aekit.commands.demo\n")
    found = _violations(bad, tmp_path / "aekit")
    assert found == ["line 1: nn imports aekit.models.sae from a higher layer",
                     "line 2: imports the package root (import from the module that defines it)",
                     "line 4: nn imports aekit.commands.demo from a higher layer"]
