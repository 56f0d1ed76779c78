"""Dependencies run one way: no import cycle between the packages, and none between modules inside one.

Every import counts, also those inside functions: a lazy import hides a cycle from Python, not from a reader.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("common", "boards", "quant", "hw", "sim", "pqhw")
# The one allowed direction: a package may import only those listed after it here.
ALLOWED = {
    "common": set(),
    "boards": {"common"},
    "quant": {"common", "boards"},
    "hw": {"common", "boards"},
    "sim": {"common", "boards", "hw"},
    "pqhw": {"common", "boards", "quant", "hw", "sim"},
}


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in (ROOT / pkg).rglob("*.py"):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


def _resolve(name: str, mods: dict) -> str | None:
    while name and name not in mods:
        name = name.rpartition(".")[0]
    return name or None


def _imports(module: str, path: Path, mods: dict) -> set[str]:
    out = set()
    is_pkg = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor if is_pkg else anchor[:-1]
                anchor = anchor[:len(anchor) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{a.name}" for a in node.names] + [base]
        else:
            continue
        for n in names:
            target = _resolve(n, mods)
            if target and target != module:
                out.add(target)
    return out


@pytest.fixture(scope="module")
def graph():
    mods = _modules()
    return {m: _imports(m, p, mods) for m, p in mods.items()}


def _cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(edges.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        state[n] = 2
        stack.pop()
        return None

    for n in sorted(edges):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_packages_import_in_one_direction(graph):
    wrong = sorted(f"{m} -> {t}" for m, ts in graph.items() for t in ts
                   if t.split(".")[0] != m.split(".")[0] and t.split(".")[0] not in ALLOWED[m.split(".")[0]])
    assert not wrong, "imports against the package order: " + "; ".join(wrong)


@pytest.mark.parametrize("pkg", PACKAGES)
def test_no_import_cycle_inside_a_package(graph, pkg):
    inside = {m: {t for t in ts if t.split(".")[0] == pkg and t != pkg} for m, ts in graph.items()
              if m.split(".")[0] == pkg}
    cycle = _cycle(inside)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_cycle_finder_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_qonnx_execution_in_hw_does_not_load_torch():
    """hw reads exported files: running a QONNX graph through hw's execution path must not pull in torch."""
    import subprocess
    import sys

    code = """
import sys
import numpy as np
from onnx import TensorProto, helper
from qonnx.core.modelwrapper import ModelWrapper
from qonnx.util.basic import qonnx_make_model
import hw.compile, hw.finn_flow
from common.qonnx_exec import execute
w = helper.make_tensor("w", TensorProto.FLOAT, [3, 2], [1, -1, 2, 0, 0, 3])
node = helper.make_node("MatMul", ["x", "w"], ["y"])
g = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3])],
                      [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], initializer=[w])
y = execute(ModelWrapper(qonnx_make_model(g)), np.array([[1, 2, 3], [0, 1, 0]]))
assert y.tolist() == [[5, 8], [2, 0]], y
print("torch" in sys.modules)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "False"
