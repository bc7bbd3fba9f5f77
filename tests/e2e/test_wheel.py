"""The built wheel works on its own: schema, templates, grammar and the zoo are package data, the console script is
installed, and everything the compiler does works without torch."""

import subprocess
import sys
import venv
import zipfile

import pytest

from helpers import EXAMPLES, REPO, ZOO_SPECS


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_validates_and_compiles(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(REPO)],
        check=True,
        capture_output=True,
    )
    wheel = next(wheels.glob("npc-*.whl"))
    packaged = {name for name in zipfile.ZipFile(wheel).namelist() if name.startswith("npc/zoo/")}
    assert {f"npc/zoo/{spec.name}" for spec in ZOO_SPECS} <= packaged and len(ZOO_SPECS) == 48
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

    # Every zoo model by name, from outside the repository: once through the console script, then all 48 through
    # the same entry point in one process (48 interpreter start-ups would dominate the test).
    result = subprocess.run([str(npc), "compile", "yolox-s-detection"], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "def build_model(num_classes: int)" in (tmp_path / "yolox-s-detection.py").read_text()
    names = [spec.stem for spec in ZOO_SPECS]
    script = (
        "import sys\nfrom npc.cli import main\n"
        "codes = [main(['compile', name, '-o', f'zoo/{name}.py']) for name in sys.argv[1:]]\n"
        "sys.exit(max(codes))\n"
    )
    result = subprocess.run([str(python), "-c", script, *names], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert sorted(p.stem for p in (tmp_path / "zoo").glob("*.py")) == names
    assert not subprocess.run([str(python), "-c", "import torch"], capture_output=True).returncode == 0, "no torch"

    # Commands that need the runtime say which extra to install, without a traceback; the torch-free ones work.
    for argv in (["train", str(REPO / "examples" / "resnet-digits.yaml")], ["summary", "yolox-nano-detection"]):
        result = subprocess.run([str(npc), *argv], capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode == 2, result.stderr
        assert "pip install 'npc[runtime]'" in result.stderr and "Traceback" not in result.stderr
    for argv in (["list"], ["schema"], ["graph", "yolox-nano-detection"], ["diff", *names[:2]], ["fmt", names[0]]):
        result = subprocess.run([str(npc), *argv], capture_output=True, text=True, cwd=tmp_path)
        assert result.returncode in (0, 1) and "Traceback" not in result.stderr, (argv, result.stderr)

    # Nothing leaks into site-packages under generic top-level names: only `npc` is importable.
    listing = subprocess.run([str(python), "-c", "import spec"], capture_output=True, text=True)
    assert listing.returncode != 0
