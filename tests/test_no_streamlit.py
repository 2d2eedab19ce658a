"""vit_core is a library: importing any of its modules must not pull in Streamlit."""
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

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
assert "vit_core.loading" in names and "vit_core.model" in names, names
assert not failed, failed
leaked = sorted(m for m in sys.modules if m == "streamlit" or m.startswith("streamlit."))
assert not leaked, leaked[:5]
print(len(names))
"""


def test_vit_core_imports_without_streamlit():
    out = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.strip()) >= 3
