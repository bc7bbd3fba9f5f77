"""The built wheel works on its own: schema, templates and grammar are package data, the console script is installed."""

import subprocess
import sys
import venv

import pytest

from helpers import EXAMPLES, REPO


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_validates_and_compiles(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
        check=True,
        capture_output=True,
    )
    wheel = next(wheels.glob("npc-*.whl"))
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "-q", str(wheel)], check=True, capture_output=True)
    npc = env_dir / "bin" / "npc"

    specs = [*EXAMPLES, *sorted((REPO / "examples").glob("*.npc"))]  # .npc files need the packaged grammar
    result = subprocess.run([str(npc), "validate", *map(str, specs)], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count(": ok") == len(specs)

    out = tmp_path / "model.py"
    result = subprocess.run(
        [str(npc), "compile", str(EXAMPLES[0]), "-o", str(out)], capture_output=True, text=True, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "def build_model(num_classes: int)" in out.read_text()

    # Nothing leaks into site-packages under generic top-level names: only `npc` is importable.
    listing = subprocess.run([str(python), "-c", "import spec"], capture_output=True, text=True)
    assert listing.returncode != 0
