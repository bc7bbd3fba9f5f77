"""`npc migrate`: older NetsPresso model configs become current ones that mean the same, comments kept."""

import json
import subprocess
import sys

import pytest

from helpers import REPO, ZOO_SPECS
from npc.spec import load_text, normalise, validate
from npc.spec._migrate import migrate_text

# The v0.0.x form: flat checkpoint fields, torchvision-style resnet names, norm_layer, an old loss name.
V0_0 = """\
model:
  task: classification
  name: resnet50
  checkpoint: ./weights/resnet50.pth   # ImageNet weights
  load_checkpoint_head: False
  fx_model_checkpoint: ~
  resume_optimizer_checkpoint: ./runs/last_optimizer.pth
  freeze_backbone: False
  architecture:
    full: ~
    backbone:
      name: resnet
      params:
        block: bottleneck
        norm_layer: batch_norm   # the norm of every block
        groups: 1
        width_per_group: 64
      stage_params:
        - {plane: 64, layers: 3}
        - {plane: 128, layers: 4}
    head:
      name: fc
  losses:
    - criterion: label_smoothing_cross_entropy
      smoothing: 0.1
      weight: ~
"""

# The v0.2 - v1.0 form: fx_model_path inside the checkpoint object; and early detection names and head params.
V0_2_DETECTION = """\
model:
  task: detection
  name: yolox_tiny
  checkpoint:
    use_pretrained: False
    load_head: False
    path: ~
    fx_model_path: ./compressed.pt
    optimizer_path: ~
  architecture:
    backbone:
      name: cspdarknet
      params: {dep_mul: 0.33, wid_mul: 0.375, act_type: silu}
    neck:
      name: pafpn
    head:
      name: yolox_head
      params:
        score_thresh: 0.01
        # non-maximum suppression
        nms_thresh: 0.65
  losses:
    - criterion: yolox_loss
"""


def _current(text, path="spec.yaml"):
    migrated, changes = migrate_text(text, path)
    source = load_text(migrated, path, is_json=path.endswith(".json"))
    assert validate(source) == [], migrated
    return migrated, changes, normalise(source.data, path)


def test_the_flat_form_becomes_the_object_form_with_the_same_meaning():
    migrated, changes, spec = _current(V0_0)
    assert normalise(load_text(V0_0).data).checkpoint == spec.checkpoint  # same weights, head and optimizer
    assert spec.checkpoint.load_head is False and spec.checkpoint.optimizer_path == "./runs/last_optimizer.pth"
    assert "load_checkpoint_head" not in migrated and "resume_optimizer_checkpoint" not in migrated
    backbone = spec.components[0]
    assert backbone.params == {"block_type": "bottleneck", "norm_type": "batch_norm"}
    assert backbone.stage_params == [{"channels": 64, "num_blocks": 3}, {"channels": 128, "num_blocks": 4}]
    assert spec.losses[0].criterion == "cross_entropy" and spec.losses[0].params == {"label_smoothing": 0.1}
    assert [c.line for c in changes] == sorted(c.line for c in changes)  # reported in file order


def test_comments_and_the_files_own_style_survive():
    migrated, _, _ = _current(V0_0)
    assert "# ImageNet weights" in migrated and "# the norm of every block" in migrated
    assert "use_pretrained: True" in migrated and "fx_model_checkpoint: ~" in migrated  # True/False and ~ kept


def test_fx_model_path_names_and_head_nms_params_move():
    migrated, changes, spec = _current(V0_2_DETECTION)
    assert spec.checkpoint.fx_model == "./compressed.pt"
    assert [c.name for c in spec.components] == ["cspdarknet", "yolopafpn", "anchor_free_decoupled_head"]
    assert spec.postprocessor == {"score_thresh": 0.01, "nms_thresh": 0.65}
    assert "# non-maximum suppression" in migrated
    assert {c.pointer for c in changes} >= {"/model/fx_model_checkpoint", "/model/postprocessor/params"}


def test_migration_is_idempotent_and_json_works():
    once, _ = migrate_text(V0_2_DETECTION)
    assert migrate_text(once) == (once, [])
    as_json = json.dumps(load_text(V0_0).data)
    migrated, changes, spec = _current(as_json, "old.json")
    assert changes and json.loads(migrated)["model"]["checkpoint"]["path"] == "./weights/resnet50.pth"


@pytest.mark.parametrize("config", ZOO_SPECS, ids=[p.stem for p in ZOO_SPECS])
def test_current_peer_configs_are_left_alone(config):
    text = config.read_text()
    assert migrate_text(text, str(config)) == (text, [])


def _npc(*args):
    return subprocess.run([sys.executable, "-m", "npc", *map(str, args)], capture_output=True, text=True, cwd=REPO)


def test_cli_check_in_place_and_usage(tmp_path):
    old, current = tmp_path / "old.yaml", tmp_path / "current.yaml"
    old.write_text(V0_0)
    current.write_text(migrate_text(V0_0)[0])

    check = _npc("migrate", "--check", old, current)
    assert check.returncode == 1 and old.read_text() == V0_0
    assert f"{old}:4: /model/checkpoint: flat checkpoint fields" in check.stderr
    assert f"{current}: already current" in check.stderr

    assert _npc("migrate", old, current).returncode == 2  # several files need --in-place
    assert _npc("migrate", "--in-place", old).returncode == 0
    assert old.read_text() == current.read_text()
    assert _npc("validate", old).returncode == 0
