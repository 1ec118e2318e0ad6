"""The package's layers (docs/DESIGN.md, CONTRIBUTING.md): imports point down only, and no package imports
another package's private (underscore) names or modules."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cosmos_kernels"
# Lowest first. A module may import from its own package and from packages of a lower rank; top-level
# modules (checks, metrics, _backend, ...) sit below every package.
LAYERS = [
    ("reference", "data"),
    ("triton", "cuda"),
    ("ops",),
    ("nn",),
    ("distributed",),
    ("diffusion",),
    ("models",),
    ("pipelines", "training"),
    ("integrations",),
    ("tools",),
]
RANK = {package: rank + 1 for rank, packages in enumerate(LAYERS) for package in packages}
TOP_RANK = len(LAYERS) + 1  # cli.py, the console script's module, runs the tools


def _package(parts: list[str]) -> str | None:
    """The subpackage a module path (without the leading 'cosmos_kernels') belongs to, or None for a
    top-level module."""
    return parts[0] if parts and (PACKAGE / parts[0]).is_dir() else None


def _rank(parts: list[str]) -> int:
    package = _package(parts)
    if package is None:
        # The package root (its __init__, the public API) and cli.py stand above everything.
        return TOP_RANK if parts in ([], ["cli"]) else 0
    return RANK[package]


def _imports(path: Path):
    """(line, imported module parts, imported names) of every cosmos_kernels import in the file."""
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "cosmos_kernels":
            parts = node.module.split(".")[1:]
            names = [alias.name for alias in node.names]
            if not parts:  # from cosmos_kernels import ops, BackendUnavailableError
                for name in names:
                    is_module = (PACKAGE / name).is_dir() or (PACKAGE / f"{name}.py").exists()
                    yield node.lineno, [name] if is_module else [], [] if is_module else [name]
            else:
                yield node.lineno, parts, names
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "cosmos_kernels":
                    yield node.lineno, alias.name.split(".")[1:], []


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        yield path, parts[:-1] if parts[-1] == "__init__" else parts


def test_every_package_has_a_layer():
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert packages <= set(RANK), f"packages without a layer: {sorted(packages - set(RANK))}"


def test_imports_point_down_the_layers():
    upward = []
    for path, parts in _modules():
        mine = _package(parts)
        for line, target, _ in _imports(path):
            theirs = _package(target)
            if theirs == mine and mine is not None:
                continue
            # A name from the package root (__version__, BackendUnavailableError) is a base-level name.
            rank = _rank(target) if target else 0
            if rank > _rank(parts) or (theirs != mine and rank == _rank(parts) > 0):
                upward.append(
                    f"{path.relative_to(PACKAGE.parent)}:{line} imports cosmos_kernels.{'.'.join(target)}"
                )
    assert not upward, "imports that do not point down the layers:\n" + "\n".join(upward)


def test_no_private_name_crosses_a_package():
    crossing = []
    for path, parts in _modules():
        mine = _package(parts)
        for line, target, names in _imports(path):
            theirs = _package(target)
            if theirs is None or theirs == mine:
                continue  # top-level private modules (_backend) belong to the whole package
            private = [p for p in target[1:] if p.startswith("_")] + [n for n in names if n.startswith("_")]
            if private:
                where = f"{path.relative_to(PACKAGE.parent)}:{line}"
                crossing.append(f"{where} imports {private} from cosmos_kernels.{'.'.join(target)}")
    assert not crossing, "private names imported across packages:\n" + "\n".join(crossing)
