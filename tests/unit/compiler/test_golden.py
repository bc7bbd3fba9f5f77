"""Golden files: tests/specs/golden/<case>.{yaml,json} compiles byte for byte to tests/golden/<case>.py.

After an intended change to the emitted code, accept the new output with:  NPC_ACCEPT=1 pytest -k golden
"""

import difflib
import os

import pytest

from helpers import REPO, compile_file

SPECS = sorted((REPO / "tests" / "specs" / "golden").glob("*.*"))
GOLDEN = REPO / "tests" / "golden"


@pytest.mark.parametrize("spec", SPECS, ids=[p.stem for p in SPECS])
def test_golden(spec):
    golden = GOLDEN / f"{spec.stem.replace('-', '_')}.py"
    source = compile_file(spec, spec_sha256="0" * 64)  # a fixed hash keeps goldens stable under spec comments
    if os.environ.get("NPC_ACCEPT") == "1":
        golden.write_text(source)
    assert golden.exists(), f"no golden file yet: NPC_ACCEPT=1 pytest -k 'golden and {spec.stem}'"
    expected = golden.read_text()
    diff = "".join(difflib.unified_diff(expected.splitlines(True), source.splitlines(True), str(golden), "compiled"))
    assert source == expected, f"{diff}\nAccept with: NPC_ACCEPT=1 pytest -k 'golden and {spec.stem}'"
