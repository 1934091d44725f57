"""Importing the library has no process-wide effect; the entry points opt in to skipping typeguard, explicitly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PROBE = (
    "import typeguard; original = typeguard.typechecked; import hne_core, hne_core.atomic, hne_core.data; "
    "assert typeguard.typechecked is original, 'importing hne_core changed typeguard'; "
    "from hne_core.startup import skip_typeguard_instrumentation as skip; skip(); "
    "f = lambda: 1; print(typeguard.typechecked is not original and typeguard.typechecked(f) is f)"
)


def test_import_changes_nothing_and_the_explicit_call_skips_typeguard():
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "True"


def test_every_job_entry_point_calls_it_before_its_imports():
    for script in sorted((REPO / "workflow_scripts").glob("*.py")):
        code = [line for line in script.read_text().splitlines() if line and not line.startswith(('"""', "#"))]
        first_import = next(i for i, line in enumerate(code) if line.startswith(("import ", "from ")))
        assert code[first_import] == "from hne_core.startup import skip_typeguard_instrumentation", script.name
        assert code[first_import + 1] == "skip_typeguard_instrumentation()  # before ESPnet is imported", script.name
