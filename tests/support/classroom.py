"""Run bench/classroom.py from a test: a class against a real server, its JSON report back."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLASSROOM = ROOT / "bench" / "classroom.py"


def classroom(tmp_path: Path, *args: str, env: dict | None = None, timeout: float = 420) -> dict:
    """Run the tool to completion; its JSON report."""
    out = tmp_path / "class.json"
    run = subprocess.run([sys.executable, str(CLASSROOM), *args, "--settle", "1", "--json", str(out)],
                         cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                         env={**os.environ, **(env or {})})
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    return json.loads(out.read_text())
