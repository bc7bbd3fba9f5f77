"""The one atomic writer: files get the mode open() would give, keep an existing file's mode, and a failed write
leaves the previous file and no temp file behind. Regression: compile/fmt/migrate used to leave 0600 files."""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys

import pytest

from helpers import REPO
from npc._atomic import AtomicWriteError, new_file_mode, write_atomic

TINY = REPO / "tests" / "specs" / "golden" / "tiny-resnet-classification.yaml"
# An older NetsPresso loss name, which `npc migrate` rewrites.
OLD_LOSS_NAME = """\
model:
  task: classification
  name: tiny
  architecture:
    backbone: {name: resnet, params: {block_type: basicblock}, stage_params: [{channels: 8, num_blocks: 1}]}
    head: {name: fc}
  losses:
    - {criterion: label_smoothing_cross_entropy, smoothing: 0.1}
"""


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _npc(*args, umask: int = 0o022):
    """``npc ARGS`` in a process with the given umask (as a user's shell has it)."""

    def set_umask():
        os.umask(umask)

    return subprocess.run(
        [sys.executable, "-m", "npc", *map(str, args)], capture_output=True, text=True, preexec_fn=set_umask
    )


def test_new_files_get_the_mode_open_would_give(tmp_path):
    previous = os.umask(0o027)
    try:
        assert new_file_mode() == 0o640
        write_atomic(tmp_path / "a.txt", "text\n")
        write_atomic(tmp_path / "b.bin", b"\x00\x01")
        write_atomic(tmp_path / "c.out", lambda tmp: open(tmp, "w").write("by callable"))  # noqa: SIM115
    finally:
        os.umask(previous)
    assert [_mode(tmp_path / name) for name in ("a.txt", "b.bin", "c.out")] == [0o640] * 3
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01" and (tmp_path / "c.out").read_text() == "by callable"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin", "c.out"]


def test_compile_fmt_and_migrate_write_0644_under_umask_022_and_keep_a_files_mode(tmp_path):
    out = tmp_path / "model.py"
    assert _npc("compile", TINY, "-o", out).returncode == 0
    assert _mode(out) == 0o644
    spec = tmp_path / "spec.yaml"
    spec.write_text(TINY.read_text().replace("model:", "model:   ", 1))  # fmt has something to change
    spec.chmod(0o664)
    result = _npc("fmt", spec)
    assert result.returncode == 0 and "reformatted" in result.stderr
    assert _mode(spec) == 0o664  # an existing file keeps its mode
    converted = tmp_path / "spec.npc"
    assert _npc("fmt", spec, "--to", "npc", "-o", converted).returncode == 0
    assert _mode(converted) == 0o644
    old = tmp_path / "old.yaml"
    old.write_text(OLD_LOSS_NAME)
    old.chmod(0o640)
    result = _npc("migrate", "--in-place", old)
    assert result.returncode == 0 and "criterion: cross_entropy," in old.read_text()
    assert _mode(old) == 0o640


def test_a_failed_write_keeps_the_previous_file_and_leaves_no_temp_file(tmp_path):
    target = tmp_path / "model.py"
    target.write_text("previous\n")

    def write_too_much():
        resource.setrlimit(resource.RLIMIT_FSIZE, (16, 16))  # "disk full" after 16 bytes, in the child only

    script = (
        "import signal, sys\n"
        "signal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"  # the write fails with EFBIG instead of killing us
        "from npc._atomic import write_atomic, AtomicWriteError\n"
        "try:\n    write_atomic(sys.argv[1], 'x' * 1000)\n"
        "except AtomicWriteError as exc:\n    print(exc)\n    sys.exit(3)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script, str(target)], capture_output=True, text=True, preexec_fn=write_too_much
    )
    assert result.returncode == 3, result.stderr
    assert str(target) in result.stdout and "the previous file is unchanged" in result.stdout
    assert target.read_text() == "previous\n"
    assert [p.name for p in tmp_path.iterdir()] == ["model.py"]


def test_a_file_where_the_folder_should_be_is_a_located_error(tmp_path):
    (tmp_path / "blocker").write_text("")
    with pytest.raises(AtomicWriteError, match="blocker/out.py: could not be written .*nothing was written"):
        write_atomic(tmp_path / "blocker" / "out.py", "x")
    result = _npc("compile", TINY, "-o", tmp_path / "blocker" / "model.py")
    assert result.returncode == 2 and "could not be written" in result.stderr and "Traceback" not in result.stderr
