"""The language server is part of the torch-free core's reach: starting it, and checking a spec, import no torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from helpers import REPO

pytest.importorskip("pygls", reason="npc lsp needs the lsp extra (pip install -e '.[lsp]')")

PROGRAM = f"""
import sys
from npc.lsp._server import create_server
from npc.lsp import analyse
from npc.lsp._hover import hover
create_server()
text = open({str(REPO / "examples/resnet18-classification.yaml")!r}).read()
analysis = analyse(text, "resnet18-classification.yaml")
assert analysis.diagnostics == [] and analysis.graph is not None
assert hover(analysis, 13, 12) is not None
print(sorted(name for name in sys.modules if name == "torch" or name.startswith("torch.")))
"""


def test_the_server_never_imports_torch():
    run = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, cwd=REPO)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
