"""The import graph of ``src/synthcv`` keeps the layers of docs/ARCHITECTURE.md.

Every import counts, lazy ones inside functions included: a lazy import is still a dependency,
it only moves the cost. A module may import its own layer or lower ones; same-layer components
must not import each other in a cycle, and no module cycle exists at all. When you add a
top-level module or package, give it a layer here and in docs/ARCHITECTURE.md.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "synthcv"

#: Components (top-level modules/packages of synthcv) by layer, lowest first.
LAYERS: list[set[str]] = [
    {
        "_version",
        "fileio",
        "distributions",
        "scene",
        "targets",
        "validation",
        "safeyaml",
        "oks",
        "motion",
        "interrupts",
    },
    {
        "format",
        "render",
        "assets",
        "people",
        "labels",
        "sensor",
        "flow",
        "environment",
        "realdata",
        "digit_scenes",
        "conformance",
    },
    {"spec", "tracking"},
    {"sampler", "physics", "preflight"},
    {"pipeline", "augment"},
    {"tools", "tasks", "genmodels", "torch_data", "torch_transforms", "ray_data", "monitor"},
    {"loop"},
    {"cli"},
    {"__init__", "__main__"},  # the package root: the public facade over everything
]
LAYER_OF = {c: i for i, layer in enumerate(LAYERS) for c in layer}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def all_modules() -> dict[str, Path]:
    return {module_name(p): p for p in PACKAGE.rglob("*.py")}


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """synthcv modules that ``name`` imports (anywhere in the file), resolved to modules."""
    tree = ast.parse(path.read_text(), filename=str(path))
    is_pkg = path.name == "__init__.py"
    out: set[str] = set()
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                pkg = pkg[: len(pkg) - (node.level - 1)]
                base = ".".join([*pkg, base] if base else pkg)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                targets.append(sub if sub in known else base)
        for t in targets:
            if t == "synthcv" or t.startswith("synthcv."):
                while t not in known and "." in t:
                    t = t.rsplit(".", 1)[0]
                # a module's own subpackage is initialised before it: not a dependency (the
                # package root is the facade, and importing from it is one)
                own_package = t != "synthcv" and name.startswith(t + ".")
                if t in known and not own_package and t != name:
                    out.add(t)
    return out


def component(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    mods = all_modules()
    known = set(mods)
    return {m: imports_of(m, p, known) for m, p in mods.items()}


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as a list of nodes, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return [*stack[stack.index(m) :], m]
            if m not in state and (c := visit(m)):
                return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(edges):
        if n not in state and (c := visit(n)):
            return c
    return None


def test_every_component_has_a_layer(graph):
    missing = sorted({component(m) for m in graph} - set(LAYER_OF))
    assert not missing, f"give these a layer in LAYERS and docs/ARCHITECTURE.md: {missing}"


def test_no_module_import_cycle(graph):
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_lower_layer_imports_a_higher_one(graph):
    bad = [
        f"{m} (layer {LAYER_OF[component(m)]}) imports {t} (layer {LAYER_OF[component(t)]})"
        for m, targets in sorted(graph.items())
        for t in sorted(targets)
        if LAYER_OF[component(t)] > LAYER_OF[component(m)]
    ]
    assert not bad, "\n".join(bad)


def test_no_cycle_between_components(graph):
    edges: dict[str, set[str]] = defaultdict(set)
    for m, targets in graph.items():
        for t in targets:
            if component(t) != component(m):
                edges[component(m)].add(component(t))
    cycle = find_cycle(edges)
    assert cycle is None, "component cycle: " + " -> ".join(cycle or [])


def test_the_checker_sees_lazy_imports_and_cycles(tmp_path):
    """The walker must count imports inside functions, or it would pass vacuously."""
    f = tmp_path / "m.py"
    f.write_text("def f():\n    from synthcv.cli import app\n    import synthcv.spec\n")
    assert imports_of("synthcv.spec", f, {"synthcv.cli", "synthcv.spec"}) == {"synthcv.cli"}
    f.write_text("from synthcv import __version__\n")
    assert imports_of("synthcv.spec", f, {"synthcv", "synthcv.spec"}) == {"synthcv"}
    assert find_cycle({"a": {"b"}, "b": {"a"}}) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_one_home_for_hashes_and_atomic_renames():
    """sha256 and write-then-rename live in synthcv.fileio only (one idiom, one module)."""
    offenders = {
        str(p.relative_to(SRC)): idiom
        for p in PACKAGE.rglob("*.py")
        if p.name != "fileio.py"
        for idiom in ("hashlib.sha256", "os.replace(", "os.rename(")
        if idiom in p.read_text()
    }
    assert not offenders, offenders


def test_only_tracking_imports_mlflow():
    """MLflow (runs, lineage, the Model Registry) is reached through synthcv.tracking only, so
    its API changes land in one module."""
    offenders = [
        str(p.relative_to(SRC))
        for p in PACKAGE.rglob("*.py")
        if p.name != "tracking.py"
        and any(
            line.strip().startswith(("import mlflow", "from mlflow"))
            for line in p.read_text().splitlines()
        )
    ]
    assert not offenders, offenders
