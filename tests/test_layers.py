"""The pipeline's folders import one way only (docs/DESIGN.md, "Pipeline").

Every module of the package may import from its own layer and the layers before it, never
from a later one; the independent checker may not see the problem or the solver it checks;
only the backend imports z3.  Imports inside functions count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = {"cpusolve": ROOT / "solver", "cpusolve.encodings": ROOT / "encodings"}

#: Pipeline order: inputs -> host facts -> domains -> problem -> backend -> verify -> report ->
#: writers, with the engine and planning on top and the thin api/cli last.
LAYERS = [
    {"errors"}, {"encodings"}, {"core"}, {"inputs"}, {"hostfacts"}, {"domains"}, {"problem"}, {"backend"},
    {"verify"}, {"report"}, {"writers"}, {"engine"}, {"planning"}, {"api", "cli", "__init__"},
]
FORBIDDEN = {"verify": {"problem", "backend"}}
Z3_ONLY = {"backend"}


def modules():
    for pkg, folder in PACKAGE.items():
        for path in sorted(folder.rglob("*.py")):
            rel = path.relative_to(folder).with_suffix("")
            parts = [p for p in rel.parts if p != "__init__"] if rel.parts != ("__init__",) else []
            yield ".".join([pkg, *parts]), path


def part_of(module: str) -> str | None:
    """The layer name of a cpusolve module ('cpusolve.inputs.facts.qmp' -> 'inputs')."""
    if module.startswith("cpusolve.encodings") or module == "cpusolve.encodings":
        return "encodings"
    rest = module.split(".")[1:]
    return rest[0] if rest else "__init__"


def layer(name: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if name in names)


def imports(path: Path, module: str) -> list[str]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = module.split(".")
                pkg = parts[: len(parts) - node.level + (1 if path.name == "__init__.py" else 0)]
                base = ".".join([*pkg, base] if base else pkg)
            if base == "cpusolve":
                out += [f"cpusolve.{a.name}" for a in node.names]
            else:
                out.append(base)
    return out


def test_every_module_is_in_a_layer():
    for module, _ in modules():
        assert any(part_of(module) in names for names in LAYERS), module


def test_imports_point_one_way():
    bad = []
    for module, path in modules():
        here = part_of(module)
        for target in imports(path, module):
            if target.split(".")[0] == "z3" and here not in Z3_ONLY:
                bad.append(f"{module} imports z3")
            if not target.startswith("cpusolve"):
                continue
            there = part_of(target)
            if layer(there) > layer(here):
                bad.append(f"{module} ({here}) imports {target} ({there}), a later stage")
            if there in FORBIDDEN.get(here, ()):
                bad.append(f"{module} ({here}) may not import {target}")
    assert bad == []


def test_the_rule_catches_a_backward_import(tmp_path):
    """The walk sees imports inside functions (a check that cannot fail proves nothing)."""
    path = tmp_path / "mod.py"
    path.write_text("def f():\n    from cpusolve.engine.solve import solve\n    import z3\n")
    assert imports(path, "cpusolve.inputs.mod") == ["cpusolve.engine.solve", "z3"]
    assert layer(part_of("cpusolve.engine.solve")) > layer(part_of("cpusolve.inputs.mod"))
