"""The package's shape: imports flow one way (library <- lessons <- tools and the CLI), with no cycle, and the
model, loss, data and config modules import nothing that draws."""
import ast
from pathlib import Path

import vae_lab

PACKAGE = Path(vae_lab.__file__).parent
LAYERS = {"library": 0, "lessons": 1, "tools": 2, "cli": 2, "__main__": 2}
NOTHING_THAT_DRAWS = ("config", "data", "files", "loss", "model")
DRAWS = ("plots", "widgets", "lessons", "tools", "cli", "matplotlib", "ipywidgets")


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def imports(path: Path) -> set[str]:
    """Every vae_lab module or third-party top-level package ``path`` imports, at any depth of the file."""
    found = set()
    package = module_name(path).rsplit(".", 1)[0] if path.name != "__init__.py" else module_name(path)
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found |= {f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base for alias in node.names}
    return found


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}
GRAPH = {name: {target for target in imports(path) if target in MODULES and target != name}
         for name, path in MODULES.items()}


def layer(name: str) -> int:
    parts = name.split(".")
    return LAYERS.get(parts[1], 0) if len(parts) > 1 else 0


def test_the_import_graph_has_no_cycle():
    visiting, done = set(), set()

    def visit(name: str, path: list[str]) -> None:
        assert name not in visiting, f"import cycle: {' -> '.join(path + [name])}"
        if name in done:
            return
        visiting.add(name)
        for target in GRAPH[name]:
            visit(target, path + [name])
        visiting.discard(name)
        done.add(name)

    for name in GRAPH:
        visit(name, [])


def test_imports_flow_one_way_from_tools_and_cli_through_lessons_to_the_library():
    upward = [f"{name} imports {target}" for name, targets in GRAPH.items() for target in targets
              if layer(target) > layer(name)]
    assert not upward, upward


def test_model_loss_data_and_config_import_nothing_that_draws():
    for name in NOTHING_THAT_DRAWS:
        drawn = [target for target in imports(MODULES[f"vae_lab.{name}"])
                 if any(target == f"vae_lab.{d}" or target.startswith((f"vae_lab.{d}.", f"{d}")) for d in DRAWS)]
        assert not drawn, f"vae_lab.{name} imports {drawn}"
