"""The package's floors: every module imports only its own floor or the ones
below, with no import cycles, function-level imports included.

The floors are those of the README's Layout section, lowest first. That the
runtime floor imports no TensorFlow is tested by running it with TensorFlow
blocked (tests/runtime/test_runtime.py).
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "kerasseg"
FLOORS = (
    ("kerasseg.utils", "kerasseg.version", "kerasseg.configs"),
    ("kerasseg.runtime",),
    ("kerasseg.data", "kerasseg.visualize"),
    ("kerasseg.ops",),
    ("kerasseg.layers", "kerasseg.pretrained"),
    ("kerasseg.backbones",),
    ("kerasseg.models", "kerasseg.crf"),
    ("kerasseg.losses", "kerasseg.metrics", "kerasseg.schedules", "kerasseg.inference"),
    ("kerasseg.panoptic",),
    ("kerasseg.train", "kerasseg.saving"),
    ("kerasseg.export",),
    ("kerasseg.cli",),
)


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_module(name):
    path = PACKAGE.parent.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def imports_of(source):
    """The kerasseg modules a module's source imports, at any depth of the code."""
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.split(".")[0] == "kerasseg")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "kerasseg":
            for alias in node.names:
                child = f"{node.module}.{alias.name}"
                found.add(child if is_module(child) else node.module)
    return found


def floor_of(name):
    for index, floor in enumerate(FLOORS):
        if any(name == prefix or name.startswith(prefix + ".") for prefix in floor):
            return index
    return None


def floor_violations(graph):
    """Problems in a {module: imported modules} graph: imports of the lazy top
    package, modules outside every floor, imports of a higher floor, cycles."""
    problems = []
    for module, imported in sorted(graph.items()):
        if module != "kerasseg" and floor_of(module) is None:
            problems.append(f"{module} is on no floor (add it to FLOORS and the README)")
        for target in sorted(imported):
            if target == "kerasseg" and module != "kerasseg":
                problems.append(f"{module} imports the lazy top package `kerasseg`")
            elif module != "kerasseg" and (floor_of(target) or 0) > (floor_of(module) or 0):
                problems.append(f"{module} (floor {floor_of(module)}) imports {target} "
                                f"(floor {floor_of(target)})")
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return problems


def cycles(graph):
    """One cycle through each strongly connected group of modules (depth-first search)."""
    found, state = [], {}

    def visit(module, path):
        state[module] = "open"
        for target in sorted(graph.get(module, ())):
            if state.get(target) == "open":
                found.append(path[path.index(target):] + [target])
            elif target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    return found


def package_graph():
    return {module_name(path): imports_of(path.read_text())
            for path in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_imports_only_downward_without_cycles():
    assert floor_violations(package_graph()) == []


@pytest.mark.parametrize("module, source, problem", [
    ("kerasseg.data.labels", "from kerasseg.train import train", "floor 2) imports"),
    ("kerasseg.runtime.image", "def f():\n    from kerasseg.export import to_onnx\n",
     "floor 1) imports kerasseg.export"),
    ("kerasseg.models.unet", "import kerasseg\n", "imports the lazy top package"),
    ("kerasseg.layers.crf", "from kerasseg.layers import pooling\n", "import cycle"),
])
def test_the_check_catches_an_upward_import_a_top_package_import_and_a_cycle(module, source,
                                                                            problem):
    graph = package_graph()
    graph[module] = graph[module] | imports_of(source)
    if problem == "import cycle":  # make pooling import crf back
        graph["kerasseg.layers.pooling"] = graph["kerasseg.layers.pooling"] | {module}
    assert any(problem in line for line in floor_violations(graph)), floor_violations(graph)



def test_the_readme_layout_lists_the_floors():
    import re

    readme = (PACKAGE.parent / "README.md").read_text()
    layout = readme[readme.index("## Layout"):]
    rows = re.findall(r"^\| (\d+) \| ([^|]+) \|", layout, re.M)
    listed = tuple(tuple(f"kerasseg.{name}" for name in re.findall(r"`(\w+)`", modules))
                   for _, modules in rows)
    assert listed == FLOORS
    assert [int(floor) for floor, _ in rows] == list(range(len(FLOORS)))
