"""The package's layers point one way: a lower layer never imports a higher one, there is
no import cycle between packages, and no module grows past a size a newcomer can read.

Read from the source (imports inside functions included), so a lazy import cannot hide
an arrow that points the wrong way."""

from __future__ import annotations

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "acfd_deploy"
MAX_LINES = 400

# lowest first; a unit may import units of its own layer or any layer below it
LAYERS: list[set[str]] = [
    {"errors", "fileio", "envinfo", "resources"},
    {"configs", "boxes", "fold", "staging", "k8s"},
    {"model", "reparam", "checkpoint", "calibrate", "cost", "card"},
    {"runtime", "data"},
    {"pipeline", "eval"},
    {"verify", "train"},
    {"manifest"},  # export.json: artifacts and their verdicts (the verdict words of verify)
    {"tritonrepo"},  # Triton model repositories: written by export, served by serve
    {"export", "bench"},
    {"serve"},  # serving may use anything below it; export never imports it
    {"cli"},
]
# the package's front door re-exports the public API from below
TOP = "__init__"


def _unit(module: Path) -> str:
    """The layer unit of a module: its subpackage, or its own name at the top level."""
    parts = module.relative_to(PACKAGE).with_suffix("").parts
    return parts[0]


def _front_door() -> dict[str, str]:
    """``from acfd_deploy import load_model`` really imports acfd_deploy.checkpoint: the
    names the package's ``__init__`` re-exports, and the module each comes from."""
    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    return {
        alias.asname or alias.name: node.module.split(".")[1]
        for node in tree.body
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("acfd_deploy.")
        for alias in node.names
    }


def _imports(module: Path) -> set[str]:
    tree = ast.parse(module.read_text(), str(module))
    found: set[str] = set()
    front = _front_door()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module == "acfd_deploy" and node.level == 0:
            found |= {front[alias.name] for alias in node.names if alias.name in front}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        for name in names:
            parts = name.split(".")
            if (
                parts[0] == "acfd_deploy"
                and len(parts) > 1
                and (PACKAGE / parts[1]).with_suffix(".py").exists() | (PACKAGE / parts[1]).is_dir()
            ):
                found.add(parts[1])
    return found


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = defaultdict(set)
    for module in PACKAGE.rglob("*.py"):
        unit = _unit(module)
        graph[unit] |= _imports(module) - {unit}
    return graph


def _layer(unit: str) -> int:
    for i, layer in enumerate(LAYERS):
        if unit in layer:
            return i
    raise AssertionError(f"acfd_deploy/{unit} is in no layer: add it to LAYERS in {__file__}")


def test_every_arrow_points_down() -> None:
    wrong = [
        f"{unit} (layer {_layer(unit)}) imports {dep} (layer {_layer(dep)})"
        for unit, deps in sorted(_graph().items())
        if unit != TOP
        for dep in sorted(deps)
        if dep != TOP and _layer(dep) > _layer(unit)
    ]
    assert not wrong, "\n".join(wrong)


def test_no_cycle_between_packages() -> None:
    graph = {u: {d for d in deps if d != TOP} for u, deps in _graph().items() if u != TOP}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for dep in graph.get(node, ()):
            if state.get(dep) == 1:
                cycle.extend(path[path.index(dep) :] + [node, dep] if dep in path else [node, dep])
                return True
            if state.get(dep) is None and visit(dep, [*path, node]):
                return True
        state[node] = 2
        return False

    for unit in sorted(graph):
        if state.get(unit) is None and visit(unit, []):
            break
    assert not cycle, " -> ".join(cycle)


@pytest.mark.parametrize("lower", ["runtime", "bench", "verify", "pipeline"])
def test_no_export_toolchain_below_export(lower: str) -> None:
    """Running or measuring an artifact must not load the export toolchain (and onnx with it)."""
    offenders = [str(m.relative_to(PACKAGE)) for m in (PACKAGE / lower).rglob("*.py") if "export" in _imports(m)]
    assert not offenders, offenders


@pytest.mark.parametrize(("unit", "forbidden"), [("export", "serve"), ("bench", "serve"), ("export", "bench"), ("bench", "export")])
def test_export_and_bench_stand_apart_from_serving(unit: str, forbidden: str) -> None:
    """acfd-export writes a model repository without the serving code (tritonrepo sits
    below both), and neither export nor bench needs the other."""
    assert forbidden not in _graph()[unit], f"acfd_deploy/{unit} imports acfd_deploy.{forbidden}"


def test_no_module_is_too_long() -> None:
    long = {str(m.relative_to(PACKAGE)): n for m in PACKAGE.rglob("*.py") if (n := len(m.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_the_checker_sees_lazy_imports(tmp_path: Path) -> None:
    """The import reader must catch an import inside a function (the usual way a wrong
    arrow hides)."""
    module = tmp_path / "m.py"
    module.write_text(
        "def f():\n    from acfd_deploy.export.exporter import run_export\n    import acfd_deploy.bench.run\n"
        "    from acfd_deploy import load_model\n"
    )
    assert _imports(module) == {"export", "bench", "checkpoint"}
