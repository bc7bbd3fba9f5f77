"""The project's own code stays ruff-clean (format and lint), as CI reviewers expect."""

import subprocess
import sys

from helpers import REPO


def test_ruff_check_and_format():
    lint = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", str(REPO)], capture_output=True, text=True
    )
    assert lint.returncode == 0, lint.stdout
    fmt = subprocess.run([sys.executable, "-m", "ruff", "format", "--check", str(REPO)], capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout
