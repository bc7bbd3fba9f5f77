"""A real editor: Neovim (Debian's package), headless, opens a broken spec with `npc lsp` attached through its
built-in LSP client and reports the diagnostics it received."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO
from npc.spec import check_file

pytest.importorskip("pygls", reason="npc lsp needs the lsp extra (pip install -e '.[lsp]')")

NVIM = shutil.which("nvim")
CLIENT = Path(__file__).with_name("neovim_client.lua")


@pytest.mark.slow  # starts Neovim and the server: a few seconds
@pytest.mark.skipif(NVIM is None, reason="Neovim is not installed (apt-get install neovim; .ci/run does where it can)")
def test_neovim_receives_the_diagnostics_of_a_broken_spec(tmp_path):
    spec = tmp_path / "broken.yaml"
    text = (REPO / "examples/resnet18-classification.yaml").read_text(encoding="utf-8")
    spec.write_text(text.replace("name: resnet\n", "name: resnt\n"), encoding="utf-8")
    out = tmp_path / "diagnostics.txt"
    env = {**os.environ, "NPC_SPEC": str(spec), "NPC_OUT": str(out), "NPC_PYTHON": sys.executable}
    command = [NVIM, "--headless", "--clean", "-n", "-c", f"luafile {CLIENT}"]
    run = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    lines = out.read_text(encoding="utf-8").splitlines()
    line = text.split("\n").index("      name: resnet")
    (expected,) = check_file(spec)[1]
    words = str(expected)[len(expected.location()) + 2 :]  # what `npc validate` prints after file:line:col
    assert words.startswith("/model/architecture/backbone/name: unknown backbone 'resnt'; did you mean 'resnet'?")
    assert lines == [f"{line}:12-{line}:17 1 {words}"], lines  # severity 1: error
