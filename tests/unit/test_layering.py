"""The package layout is the pipeline: imports run one way, down the layers, and never in a cycle.

Every import in repropack/ counts, also those inside functions and under TYPE_CHECKING: a lazy import
is still a dependency. docs/architecture.md draws the same layers.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "repropack"

# lowest first; a package may import its own modules and any package on a lower layer
LAYERS: tuple[tuple[str, ...], ...] = (
    ("errors", "canonical", "files", "cache", "runtime"),  # shared, no pipeline knowledge
    ("engine",),  # the Docker boundary
    ("checksums", "bases", "store"),  # store: the run records and their blobs
    ("experiment",),
    ("freeze",),
    ("manifest",),
    ("image",),
    ("run",),
    ("cluster",),  # runs on Slurm and Kubernetes: scripts and Jobs, submission, states, results into the store
    ("verify", "publish"),
    ("report",),  # comparisons and the report page over recorded runs
    ("cli",),
    ("__main__",),
)
LAYER = {name: depth for depth, names in enumerate(LAYERS) for name in names}
SHARED = set(LAYERS[0])


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """The repropack modules ``path`` imports. ``from PACKAGE import MODULE`` is an import of MODULE (the
    package's __init__ runs first for every import of one of its modules: that is not an edge)."""
    modules = {_module(p) for p in PACKAGE.rglob("*.py")}
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            for alias in node.names:
                submodule = f"{node.module}.{alias.name}"
                found.add(submodule if submodule in modules else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name in modules} - {_module(path)}


def _graph() -> dict[str, set[str]]:
    return {_module(path): _imports(path) for path in sorted(PACKAGE.rglob("*.py"))}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_top_level_name_has_a_layer() -> None:
    names = {_top(module) for module in _graph()} - {""}
    assert names <= set(LAYER), f"give these a layer in LAYERS: {sorted(names - set(LAYER))}"


def test_imports_run_down_the_layers() -> None:
    upward = []
    for module, imports in _graph().items():
        here = _top(module)
        for target in sorted(imports):
            there = _top(target)
            if there in ("", here) or (here in SHARED and there in SHARED and LAYER[there] == 0):
                continue
            if here == "" or LAYER[there] >= LAYER[here]:
                upward.append(f"{module} imports {target}")
    assert not upward, "imports against the pipeline:\n" + "\n".join(upward)


def test_no_import_cycles() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for target in sorted(graph.get(node, ())):
            if state.get(target) == 1:
                pytest.fail("import cycle: " + " -> ".join([*path[path.index(target) :], target]))
            if target not in state:
                visit(target, [*path, target])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])


def test_the_shape_the_issue_asked_for() -> None:
    top_modules = [p for p in PACKAGE.glob("*.py")]
    assert len(top_modules) <= 12, sorted(p.name for p in top_modules)
    long = {
        str(p.relative_to(PACKAGE)): n for p in PACKAGE.rglob("*.py") if (n := len(p.read_text().splitlines())) > 400
    }
    assert not long, f"modules over 400 lines: {long}"
    for package in PACKAGE.iterdir():
        if package.is_dir() and (package / "__init__.py").exists():
            assert ast.get_docstring(ast.parse((package / "__init__.py").read_text())), (
                f"{package.name}/ needs a docstring"
            )
