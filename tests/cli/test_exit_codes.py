"""`npc validate` exit codes, run as a user runs it (a subprocess): 0 valid, 1 invalid, 2 usage error or a file
that cannot be read or parsed. Whatever the input, a user mistake never prints a traceback.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from helpers import REPO

SPECS = REPO / "tests" / "specs"
VALID = SPECS / "positive" / "checkpoint_object_form.yaml"
VALID_JSON = SPECS / "positive" / "json_form.json"
INVALID = SPECS / "negative" / "param_typo_blok_type.yaml"
INVALID_JSON = SPECS / "negative" / "json_wrong_type.json"
MALFORMED = SPECS / "negative" / "malformed_yaml_bad_indentation.yaml"
MALFORMED_JSON = SPECS / "negative" / "malformed_json_trailing_comma.json"
TEXT_DIAGNOSTIC = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<pointer>/\S*): (?P<message>.+)$")


def npc(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "npc", *map(str, args)], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert "Traceback" not in result.stdout, result.stdout
    return result


@pytest.mark.parametrize("spec", [VALID, VALID_JSON], ids=["yaml", "json"])
def test_valid_file_exits_0_and_says_ok(spec):
    result = npc("validate", spec)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"{spec}: ok"
    assert result.stderr == ""


def test_invalid_file_exits_1_with_located_diagnostic():
    result = npc("validate", INVALID)
    assert result.returncode == 1
    first = result.stderr.splitlines()[0]
    match = TEXT_DIAGNOSTIC.match(first)
    assert match, first
    assert (match["file"], match["line"], match["col"], match["pointer"]) == (
        str(INVALID),
        "13",
        "9",
        "/model/architecture/backbone/params/blok_type",
    )
    assert "did you mean 'block_type'" in match["message"]


def test_invalid_json_file_exits_1():
    assert npc("validate", INVALID_JSON).returncode == 1


@pytest.mark.parametrize("spec", [MALFORMED, MALFORMED_JSON], ids=["yaml", "json"])
def test_malformed_file_exits_2(spec):
    result = npc("validate", spec)
    assert result.returncode == 2
    assert result.stderr.startswith(f"{spec}:")


def test_missing_file_exits_2():
    result = npc("validate", "no/such/spec.yaml")
    assert result.returncode == 2
    assert "no/such/spec.yaml" in result.stderr
    assert "cannot read" in result.stderr


def test_directory_instead_of_file_exits_2():
    assert npc("validate", SPECS).returncode == 2


def test_worst_exit_code_wins_and_every_file_is_reported():
    result = npc("validate", VALID, INVALID, MALFORMED)
    assert result.returncode == 2
    assert f"{VALID}: ok" in result.stdout
    assert str(INVALID) in result.stderr and str(MALFORMED) in result.stderr
    assert npc("validate", VALID, INVALID).returncode == 1


def test_json_format_is_machine_readable():
    result = npc("validate", "--format", "json", INVALID, INVALID_JSON, MALFORMED)
    assert result.returncode == 2
    records = json.loads(result.stdout)
    assert [(r["file"], r["pointer"], r["line"], r["col"]) for r in records] == [
        (str(INVALID), "/model/architecture/backbone/params/blok_type", 13, 9),
        (str(INVALID_JSON), "/model/freeze_backbone", 5, 5),
        (str(INVALID_JSON), "/model/architecture/backbone/stage_params/0/channels", 9, 27),
        (str(MALFORMED), "", 7, 6),
    ]
    assert all(isinstance(r["message"], str) and r["message"] for r in records)


def test_json_format_of_a_valid_file_is_an_empty_list():
    result = npc("validate", "--format", "json", VALID)
    assert result.returncode == 0
    assert json.loads(result.stdout) == []


@pytest.mark.parametrize(
    "args",
    [
        ["validate"],
        ["validate", "--format", "xml", str(VALID)],
        ["validate", "--no-such-option", str(VALID)],
        ["no-such-command"],
        [],
    ],
    ids=["no-files", "bad-format", "bad-option", "bad-command", "no-command"],
)
def test_bad_usage_exits_2(args):
    result = npc(*args)
    assert result.returncode == 2
    assert "usage:" in (result.stderr + result.stdout)


NEGATIVE = sorted(p for p in (SPECS / "negative").iterdir() if not p.name.endswith(".expect.json"))


def test_no_traceback_ever():
    """The whole negative corpus in one run per format: diagnostics for every file, never a traceback (npc())."""
    text = npc("validate", *NEGATIVE)
    assert text.returncode == 2  # the corpus holds malformed files
    as_json = npc("validate", "--format", "json", *NEGATIVE)
    assert as_json.returncode == 2
    assert {record["file"] for record in json.loads(as_json.stdout)} == {str(p) for p in NEGATIVE}


def test_a_command_without_its_extra_names_the_extra_to_install(tmp_path):
    """Regression: `npc train` in an install without torch ended in a ModuleNotFoundError traceback. A process whose
    `import torch` fails stands in for that install (tests/e2e/test_wheel.py checks a real one)."""
    blocker = tmp_path / "torch.py"
    blocker.write_text("raise ModuleNotFoundError(\"No module named 'torch'\", name='torch')\n")
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    spec = REPO / "examples" / "resnet-digits.yaml"
    result = subprocess.run(
        [sys.executable, "-m", "npc", "train", str(spec)], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 2
    assert "npc train: needs the runtime extra" in result.stderr and "pip install 'npc[runtime]'" in result.stderr
    assert "Traceback" not in result.stderr
    result = subprocess.run(
        [sys.executable, "-m", "npc", "validate", str(spec)], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr


def test_the_same_mistake_reads_the_same_under_validate_and_train(tmp_path):
    """Regression: `training.epochs: 0` was "0 is less than the minimum of 1" under validate and "must be >= 1,
    got 0" under train; one explainer (spec/_explain.py) words every schema error for every command."""
    spec = tmp_path / "spec.yaml"
    spec.write_text(
        "model:\n  task: classification\n  name: tiny\n  architecture:\n"
        "    backbone: {name: resnet, params: {block_type: basicblock}, stage_params: [{channels: 8, num_blocks: 1}]}\n"
        "    head: {name: fc}\n  losses:\n    - {criterion: cross_entropy}\ntraining:\n  epochs: 0\n"
    )
    expected = f"{spec}:10:3: /training/epochs: must be >= 1, got 0"
    validate, train = npc("validate", str(spec)), npc("train", str(spec), "--out", str(tmp_path / "run"))
    assert (validate.returncode, train.returncode) == (1, 1)
    assert expected in validate.stderr and expected in train.stderr
    assert not (tmp_path / "run").exists()


def test_validate_accepts_the_environment_and_logging_sections_train_reads(tmp_path):
    """A spec may carry every run section npc train reads (as NetsPresso's six files hold them); validate checks
    them with the same schema and words, instead of refusing the section."""
    spec = tmp_path / "spec.yaml"
    model = (
        "model:\n  task: classification\n  name: tiny\n  architecture:\n"
        "    backbone: {name: resnet, params: {block_type: basicblock}, stage_params: [{channels: 8, num_blocks: 1}]}\n"
        "    head: {name: fc}\n  losses:\n    - {criterion: cross_entropy}\n"
    )
    spec.write_text(model + "environment:\n  seed: 1\n  batch_size: 16\nlogging:\n  tensorboard: false\n")
    assert npc("validate", str(spec)).returncode == 0
    spec.write_text(model + "environment:\n  batch_sizee: 16\n")
    result = npc("validate", str(spec))
    assert result.returncode == 1
    assert "/environment/batch_sizee: unknown key 'batch_sizee'; did you mean 'batch_size'?" in result.stderr
