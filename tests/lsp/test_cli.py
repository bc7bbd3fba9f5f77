"""`npc lsp` without the lsp extra says what to install and exits 2 (a usage error), without a traceback."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = """
import sys
sys.modules["pygls"] = None  # as if the lsp extra were not installed: importing it raises ImportError
from npc.cli import main
raise SystemExit(main(["lsp"]))
"""


def test_without_pygls_npc_lsp_names_the_extra():
    run = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, stdin=subprocess.DEVNULL)
    assert run.returncode == 2
    assert run.stderr.strip() == "npc lsp: needs the lsp extra (no module named 'pygls'): pip install 'npc[lsp]'"
