"""The library's shape: Prefect stays in flows/, and rqvae_ids imports only downwards, without cycles."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "rqvae_ids"

# The floors of rqvae_ids, from the ground up (docs/ARCHITECTURE.md). A module may import
# from its own floor or the floors below, never from above. `flows/` (Prefect, outside the
# package) sits between the pipeline and the CLI: only the commands reach it, inside their
# handlers. Keys are the top-level names inside rqvae_ids/ (a module or a package).
FLOORS = {
    "__init__": 0, "core": 0,
    "quantizers": 1, "models": 1,
    "catalog": 2, "embed": 2, "train": 2, "ids": 2,
    "evaluate": 3, "cf": 3,
    "compare": 4, "retrieval": 4,
    "pipeline": 5,
    "flows": 6,
    "commands": 7, "cli": 7,
}


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    rel = Path(*name.split("."))
    return (REPO / rel).with_suffix(".py").is_file() or (REPO / rel / "__init__.py").is_file()


def _imports(path: Path) -> set[str]:
    """Every rqvae_ids/flows module that `path` imports, at the top or inside a function."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            base = ".".join(base[: len(base) - node.level + 1]) if node.level else ""
            target = ".".join(p for p in (base, node.module or "") if p)
            subs = {f"{target}.{alias.name}" for alias in node.names}
            found |= {s for s in subs if _is_module(s)} or {target}
    return {m for m in found if m.split(".")[0] in ("rqvae_ids", "flows") and m != name}


def _graph() -> dict[str, set[str]]:
    return {_module_name(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def _floor_key(module: str) -> str:
    parts = module.split(".")
    return "flows" if parts[0] == "flows" else (parts[1] if len(parts) > 1 else "__init__")


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of `graph` (as a path that ends where it starts), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt]
            if nxt not in state and (found := visit(nxt, path + [node])):
                return found
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [])):
            return found
    return None


def test_every_library_module_has_a_floor():
    missing = sorted({_floor_key(m) for m in _graph()} - set(FLOORS))
    assert not missing, f"add these to FLOORS (and docs/ARCHITECTURE.md): {missing}"


def _floors_in_the_docs() -> dict[str, int]:
    """Room -> floor of the floors table in docs/ARCHITECTURE.md (`| 2 | `catalog/`, `embed` | ... |`)."""
    import re

    doc = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    table = doc[doc.index("| floor | rooms |"):].split("\n\n", 1)[0]
    found = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        floor = int(re.match(r"\d+", cells[0]).group())
        for room in re.findall(r"`([^`]+)`", cells[1]):
            found["__init__" if room == "__init__" else room.strip("/")] = floor
    return found


def test_the_floors_table_here_is_FLOORS():
    # docs/ARCHITECTURE.md's floors table and FLOORS cannot drift apart (issue 26: the table had lost
    # embed_backends and cf); the package's own __init__ is floor 0 without a row of its own.
    assert _floors_in_the_docs() == {k: v for k, v in FLOORS.items() if k != "__init__"}


def test_no_upward_import():
    upward = [
        f"{module} (floor {FLOORS[_floor_key(module)]}) imports {target} (floor {FLOORS[_floor_key(target)]})"
        for module, targets in _graph().items()
        for target in sorted(targets)
        if FLOORS[_floor_key(target)] > FLOORS[_floor_key(module)]
    ]
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_flows_only_from_the_commands():
    reach = [f"{m} imports {t}" for m, ts in _graph().items() for t in ts
             if t.split(".")[0] == "flows" and _floor_key(m) != "commands"]
    assert not reach, reach


def test_no_import_cycle_between_modules():
    cycle = _cycle(_graph())
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_no_import_cycle_between_rooms_of_one_floor():
    rooms: dict[str, set[str]] = {}
    for module, targets in _graph().items():
        rooms.setdefault(_floor_key(module), set()).update(_floor_key(t) for t in targets)
    for room, targets in rooms.items():
        targets.discard(room)
    cycle = _cycle(rooms)
    assert cycle is None, "import cycle between rooms: " + " -> ".join(cycle)


def test_the_checks_see_a_cycle_and_an_upward_import():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    graph = _graph()
    assert "rqvae_ids.compare.config" in graph["rqvae_ids.compare.comparison"]  # relative imports resolved
    assert "rqvae_ids.evaluate.harness" in graph["rqvae_ids.evaluate.evaluation"]  # `from . import harness`
    assert "rqvae_ids.core.embedding_table" in graph["rqvae_ids.train.inputs"]  # imports inside functions count


def _modules_loaded_after(code: str) -> set[str]:
    """Top-level names in sys.modules after running `code` in a fresh interpreter."""
    probe = code + "\nimport sys\nprint(' '.join(sorted({m.split('.')[0] for m in sys.modules})))\n"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True, cwd=REPO)
    return set(out.stdout.split())


def test_importing_the_library_and_cli_does_not_import_prefect():
    loaded = _modules_loaded_after("import rqvae_ids, rqvae_ids.cli")
    assert "rqvae_ids" in loaded  # the probe itself works
    assert "prefect" not in loaded and "flows" not in loaded


def test_building_the_cli_parser_imports_neither_torch_nor_pandas():
    # --help stays fast: the commands read the names they offer (tokenizer kinds, compare rows, chunk
    # size) from light modules (models/kinds.py, compare/config.py, ids/encode.py) instead of copies.
    loaded = _modules_loaded_after("from rqvae_ids.cli import build_parser\nbuild_parser()")
    assert "rqvae_ids" in loaded
    assert not {"torch", "pandas", "prefect"} & loaded, loaded


def test_no_library_module_imports_prefect_at_import_time():
    code = (
        "import importlib, pkgutil, rqvae_ids\n"
        "for m in pkgutil.walk_packages(rqvae_ids.__path__, 'rqvae_ids.'):\n"
        "    importlib.import_module(m.name)\n"
    )
    loaded = _modules_loaded_after(code)
    assert "torch" in loaded  # every module was imported, the heavy ones included
    assert "prefect" not in loaded and "flows" not in loaded


# Issue 12: "the longest function in the library under ~80 lines". A function's length is the
# span of its def statement (`def` line to last body line; decorators not counted).
MAX_FUNCTION_LINES = 80
# Functions allowed over the limit for now, each with why. Remove an entry when it shrinks.
LONG_FUNCTIONS_ALLOWED: set[str] = set()  # none: split a long function into named steps instead


def _long_functions(root: Path, limit: int) -> dict[str, int]:
    """'path:qualified name' -> lines of every function (methods and nested ones too) over `limit`."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).as_posix()

        def visit(node: ast.AST, prefix: str) -> None:
            for child in ast.iter_child_nodes(node):
                name = prefix
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    name = f"{prefix}.{child.name}" if prefix else child.name
                if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    lines = child.end_lineno - child.lineno + 1
                    if lines > limit:
                        found[f"{rel}:{name}"] = lines
                visit(child, name)

        visit(ast.parse(path.read_text(), str(path)), "")
    return found


def test_no_library_function_is_longer_than_80_lines():
    long = _long_functions(PACKAGE, MAX_FUNCTION_LINES)
    over = {k: v for k, v in long.items() if k not in LONG_FUNCTIONS_ALLOWED}
    assert not over, f"functions over {MAX_FUNCTION_LINES} lines (split them into named steps): {over}"
    stale = LONG_FUNCTIONS_ALLOWED - set(long)
    assert not stale, f"{MAX_FUNCTION_LINES} lines or shorter now, remove from LONG_FUNCTIONS_ALLOWED: {stale}"


def test_the_length_check_counts_def_spans(tmp_path):
    src = tmp_path / "m.py"
    body = "\n".join(f"    x{i} = {i}" for i in range(81))
    src.write_text(f"class C:\n    def long(self):\n    {body.replace(chr(10), chr(10) + '    ')}\n\n"
                   f"def short():\n    return 1\n")
    found = {k.split(":", 1)[1]: v for k, v in _long_functions(tmp_path, 80).items()}
    assert found == {"C.long": 82}


def _own_code_skips(root: Path) -> list[str]:
    """'file:line' of every importorskip("rqvae_ids...") / importorskip("flows...") under `root`."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "importorskip"
                    and node.args and isinstance(node.args[0], ast.Constant)
                    and str(node.args[0].value).split(".")[0] in ("rqvae_ids", "flows")):
                found.append(f"{path.name}:{node.lineno}")
    return found


def test_no_test_skips_on_a_broken_import_of_our_own_code(tmp_path):
    # issue 12: a broken import of our own code must fail the suite, never turn into a skip
    assert _own_code_skips(REPO / "tests") == []
    (tmp_path / "t.py").write_text('import pytest\nm = pytest.importorskip("rqvae_ids.models")\n')
    assert _own_code_skips(tmp_path) == ["t.py:2"]
