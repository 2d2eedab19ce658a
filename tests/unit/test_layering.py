"""The house plan, enforced: imports run one way through the layers, no cycles, Streamlit on top.

Layers, bottom to top: model (vit_core/model.py, cnn.py) < io < data < analysis < training <
render < the UI (pages/_ui, then the page files and app.py). A module may import its own layer
or any layer below. Imports inside functions count too: a lazy import is still a dependency.
"""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RANK = {"vit_core.model": 0, "vit_core.cnn": 0, "vit_core": 0, "vit_core.io": 1, "vit_core.data": 2,
        "vit_core.analysis": 3, "vit_core.training": 4, "vit_core.render": 5, "pages._ui": 6, "pages": 7,
        "app": 8}
STREAMLIT_FROM = 6  # the lowest rank that may import streamlit


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def project_files() -> list[Path]:
    files = [ROOT / "app.py"] + sorted((ROOT / "pages").rglob("*.py")) + sorted((ROOT / "vit_core").rglob("*.py"))
    return [f for f in files if "__pycache__" not in f.parts]


def rank(mod: str) -> int | None:
    best = None
    for prefix, r in RANK.items():
        if mod == prefix or mod.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, r)
    return None if best is None else best[1]


def imports_of(path: Path) -> list[tuple[str, int]]:
    """Every imported module name (absolute, including `from x import y` submodules) and its line."""
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.module, node.lineno))
            out += [(f"{node.module}.{a.name}", node.lineno) for a in node.names]
    return out


def graph() -> dict[str, set[str]]:
    mods = {module_name(f): f for f in project_files()}
    g: dict[str, set[str]] = {}
    for name, f in mods.items():
        g[name] = {m for m, _ in imports_of(f) if m in mods and m != name}
    return g


def test_imports_follow_the_layer_order_and_streamlit_stays_on_top():
    bad = []
    for f in project_files():
        me = module_name(f)
        r_me = rank(me)
        for mod, line in imports_of(f):
            top = mod.split(".")[0]
            if top == "streamlit" and r_me < STREAMLIT_FROM:
                bad.append(f"{me}:{line} imports streamlit below the UI layer")
            r = rank(mod)
            if r is not None and r > r_me:
                bad.append(f"{me}:{line} imports {mod} (layer {r} above {r_me})")
    assert not bad, "\n".join(bad)


def test_no_private_names_across_modules():
    bad = []
    for f in project_files():
        me = module_name(f)
        tree = ast.parse(f.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and rank(node.module) is not None:
                for a in node.names:
                    if a.name.startswith("_") and a.name != "__version__":
                        bad.append(f"{me} imports {node.module}.{a.name}")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    g = graph()
    # Module `a.b` importing `a` (its package) is Python's own doing, not a design cycle.
    for name in g:
        g[name] = {m for m in g[name] if not name.startswith(m + ".")}
    color: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def visit(n):
        color[n] = 1
        stack.append(n)
        for m in sorted(g.get(n, ())):
            if color.get(m) == 1:
                cycles.append(stack[stack.index(m):] + [m])
            elif color.get(m) is None:
                visit(m)
        stack.pop()
        color[n] = 2

    for n in sorted(g):
        if color.get(n) is None:
            visit(n)
    assert not cycles, cycles


def test_the_layering_check_catches_what_it_should(tmp_path):
    """The checks above must be able to fail: a model-layer file importing render, or streamlit."""
    f = tmp_path / "probe.py"
    f.write_text("def f():\n    import streamlit\n    from vit_core.render import figures\n")
    mods = [m for m, _ in imports_of(f)]
    assert "streamlit" in mods and "vit_core.render.figures" in mods
    assert rank("vit_core.render.figures") > rank("vit_core.model")


def test_vit_core_shape():
    top = [p for p in (ROOT / "vit_core").glob("*.py")]
    assert len(top) <= 8, sorted(p.name for p in top)
    too_long = [(str(p.relative_to(ROOT)), n) for p in project_files()
                if (n := len(p.read_text().splitlines())) > 400]
    assert not too_long, too_long


def test_no_test_module_imports_another():
    bad = []
    for f in (ROOT / "tests").rglob("test_*.py"):
        for mod, line in imports_of(f):
            leaf = mod.split(".")[-1]
            if leaf.startswith("test_") or mod.startswith("tests.") and ".test_" in mod:
                bad.append(f"{f.relative_to(ROOT)}:{line} imports {mod}")
    assert not bad, bad


SCRIPT = r"""
import importlib, pkgutil, sys
import vit_core
names = ["vit_core"] + [m.name for m in pkgutil.walk_packages(vit_core.__path__, "vit_core.")]
failed = []
for name in names:
    try:
        importlib.import_module(name)
    except Exception as err:
        failed.append(f"{name}: {type(err).__name__}: {err}")
assert "vit_core.io.loading" in names and "vit_core.model" in names, names
assert not failed, failed
leaked = sorted(m for m in sys.modules if m == "streamlit" or m.startswith("streamlit."))
assert not leaked, leaked[:5]
print(len(names))
"""


def test_vit_core_imports_without_streamlit():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.strip()) >= 3
