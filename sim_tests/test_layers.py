"""The layering of the code: ``compiler`` imports neither ``sps_hw`` nor ``boards``, ``sps_hw``
not ``boards``, none of them ``energy`` (the pricing, above the boards) or ``explore`` (the
sweeps, above the boards), ``energy`` not ``explore``, and none of them ``sps`` (the command
line on top); and no module imports itself back through others. Imports are read with ``ast``
at any depth, so an import inside a function counts as much as one at the top, as does
``importlib.import_module("name")``."""

import ast
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("compiler", "sps_hw", "boards", "energy", "explore", "sps")
#: The packages each package must not import.
FORBIDDEN = {"compiler": {"sps_hw", "boards", "energy", "explore", "sps"},
             "sps_hw": {"boards", "energy", "explore", "sps"},
             "boards": {"energy", "explore", "sps"}, "energy": {"explore", "sps"},
             "explore": {"sps"}}


def project_modules():
    """``{dotted name: path}`` of every module of :data:`PACKAGES`."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def imports(source, name, is_package):
    """``[(dotted name, line)]`` that module ``name`` imports: ``import a.b``, ``from a import
    b`` (as ``a.b``; the caller keeps the longest prefix that is a module), relative forms,
    and ``importlib.import_module`` of a string literal, at any depth."""
    package = name if is_package else name.rpartition(".")[0]

    def absolute(module, level):
        base = package
        for _ in range(level - 1):
            base = base.rpartition(".")[0]
        return ".".join(p for p in (base, module) if p) if level else module

    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = absolute(node.module, node.level)
            found += [(f"{module}.{alias.name}", node.lineno) for alias in node.names]
        elif (isinstance(node, ast.Call) and node.args
              and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)
              and getattr(node.func, "attr", getattr(node.func, "id", None)) == "import_module"):
            text = node.args[0].value
            stripped = text.lstrip(".")
            found.append((absolute(stripped, len(text) - len(stripped)), node.lineno))
    return found


def import_graph():
    """``{module: {imported project module: line}}`` over :func:`project_modules`."""
    modules = project_modules()
    graph = {}
    for name, path in modules.items():
        edges = graph[name] = {}
        for target, line in imports(path.read_text(), name, path.name == "__init__.py"):
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                edges.setdefault(target, line)
    return graph


def find_cycle(graph):
    """One import cycle ``[a, b, ..., a]`` of ``graph``, or ``None``."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = "done"
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_lower_layers_do_not_import_higher_ones():
    modules = project_modules()
    bad = []
    for name, path in modules.items():
        forbidden = FORBIDDEN.get(name.split(".")[0], set())
        for target, line in imports(path.read_text(), name, path.name == "__init__.py"):
            if target.split(".")[0] in forbidden:
                bad.append(f"{path.relative_to(ROOT)}:{line} imports {target}")
    assert not bad, "imports against the layering (compiler < sps_hw < boards < energy, " \
        "explore < sps):\n" + "\n".join(bad)


def test_no_import_cycle():
    graph = import_graph()
    assert {"compiler.cli", "sps_hw.top", "boards.host", "energy.report", "explore.sweep",
            "sps.cli"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(
        f"{a} (line {graph[a][b]})" for a, b in pairwise(cycle)) + f" -> {cycle[-1]}"


def test_the_checks_see_deferred_imports_and_cycles():
    source = ("def f():\n    from ..b import c\n    import importlib\n"
              "    importlib.import_module('x.y')\n")
    assert imports(source, "p.q.a", False) == [("p.b.c", 2), ("importlib", 3), ("x.y", 4)]
    assert find_cycle({"a": {"b": 1}, "b": {"c": 1}, "c": {"a": 1}, "d": {}}) == \
        ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b": 1}, "b": {}}) is None
