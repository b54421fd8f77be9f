"""The package layout as a layered graph: no import cycles, and ``resd_envs`` stays light.

Reads every module of ``resd_envs`` and ``resd_learner`` with :mod:`ast` (nothing is imported) and
collects the project modules each one imports, at module level and inside functions alike, except
under ``if TYPE_CHECKING:``. Expected layering: envs (tasks, scoring, sandbox) -> learner (task
sources, rollout, context, batch, teacher, loss, trainer), with no cycles among modules.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("resd_envs", "resd_learner")
# Light dependencies only: resd_envs is pip-installed on its own by users of other trainers.
FORBIDDEN_IN_ENVS = ("torch", "transformers", "deepspeed", "vllm", "resd_learner")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, module: str, is_package: bool) -> set[str]:
    """Absolute names imported by ``module`` (relative imports resolved), TYPE_CHECKING blocks skipped."""
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_package else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            found.add(prefix)
            found.update(f"{prefix}.{alias.name}" for alias in node.names)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(project-internal edges, all imported names) per project module."""
    sources = {
        _module_name(path): path
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
    }
    raw: dict[str, set[str]] = {}
    edges: dict[str, set[str]] = {}
    for name, path in sources.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        names = _imports(tree, name, path.name == "__init__.py")
        raw[name] = names
        # `from pkg import mod` names a submodule when one exists; otherwise it is an attribute of pkg.
        edges[name] = {target for target in names if target in sources and target != name}
    return edges, raw


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    counter = 0
    for root in sorted(edges):
        if root in index:
            continue
        work = [(root, iter(sorted(edges[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    return components


def _without_package_inits(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """Drop edges from a package's ``__init__`` to its own submodules (re-exports are not layering)."""
    return {
        module: {t for t in targets if not t.startswith(module + ".")}
        for module, targets in edges.items()
    }


def test_finds_a_cycle_when_there_is_one() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_relative_imports_resolve() -> None:
    tree = ast.parse("from . import x\nfrom ..core import y\nif TYPE_CHECKING:\n    import hidden\n")
    assert _imports(tree, "resd_envs.sandbox.runner", is_package=False) == {
        "resd_envs.sandbox",
        "resd_envs.sandbox.x",
        "resd_envs.core",
        "resd_envs.core.y",
    }


def test_no_import_cycles_between_modules() -> None:
    edges, _ = _graph()
    cycles = _cycles(_without_package_inits(edges))
    assert cycles == [], "import cycles (break them by moving the shared piece down a layer):\n" + "\n".join(
        " <-> ".join(c) for c in cycles
    )


@pytest.mark.parametrize("forbidden", FORBIDDEN_IN_ENVS)
def test_resd_envs_never_imports_heavy_or_learner_code(forbidden: str) -> None:
    _, raw = _graph()
    offenders = sorted(
        module
        for module, names in raw.items()
        if module.startswith("resd_envs")
        and any(name == forbidden or name.startswith(forbidden + ".") for name in names)
    )
    assert offenders == [], f"resd_envs modules importing {forbidden}: {offenders}"
