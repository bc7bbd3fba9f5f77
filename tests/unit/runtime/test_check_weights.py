"""`npc check-weights`: NetsPresso-shaped weights load strictly into every compiled zoo model; a mismatch is
located at the spec pointer of the component that owns it."""

import json

import pytest
import torch
from safetensors.torch import save_file

from helpers import ZOO_SPECS, compiles, peer_keys
from npc.cli import main
from npc.runtime.tools.check_weights import check_shapes, read_shapes
from npc.runtime.tools.summary import load_target

CASES = [path for path in ZOO_SPECS if compiles(path)]
RESNET18 = next(p for p in ZOO_SPECS if p.stem == "resnet18-classification")


@pytest.mark.parametrize("config", CASES, ids=[p.stem for p in CASES])
def test_netspresso_shaped_weights_would_load_strictly(config):
    shapes = {key: tuple(shape) for key, shape in peer_keys(config.stem).items()}
    report = check_shapes(load_target(config), shapes, load_head=True)  # head included: the whole state dict
    assert report.num_classes == 10  # inferred from the head's shapes
    assert report.problems == [] and report.strict_ok
    assert report.matched == len(shapes)


def _resnet18_weights(tmp_path):
    shapes = peer_keys("resnet18-classification")
    path = tmp_path / "resnet18.safetensors"
    save_file({k: torch.zeros(s) for k, s in shapes.items()}, str(path))
    return path


def test_a_widened_stage_is_caught_and_located(tmp_path, capsys):
    weights = _resnet18_weights(tmp_path)
    spec = tmp_path / "wider.yaml"
    spec.write_text(RESNET18.read_text().replace("channels: 256", "channels: 320", 1))
    assert main(["check-weights", str(spec), str(weights), "--head", "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert not report["strict_ok"]
    assert {p["kind"] for p in report["problems"]} == {"shape"}
    # channels 256 is the third stage: its blocks, and the next stage's first conv and shortcut that read it
    pointers = {p["pointer"] for p in report["problems"]}
    assert pointers == {"/model/architecture/backbone/stage_params/2", "/model/architecture/backbone/stage_params/3"}
    assert all(p["key"].startswith(("backbone.stages.2.", "backbone.stages.3.0.")) for p in report["problems"])


def test_text_report_and_load_head(tmp_path, capsys):
    weights = _resnet18_weights(tmp_path)
    assert main(["check-weights", str(RESNET18), str(weights)]) == 0  # the peer config says load_head: False
    out = capsys.readouterr().out
    assert "head tensor(s) left out" in out and "strict=True loading would succeed" in out

    state = {k: torch.zeros(s) for k, s in peer_keys("resnet18-classification").items()}
    state["head.extra.weight"] = torch.zeros(3)
    del state["head.classifier.1.bias"]
    torch.save(state, tmp_path / "w.pth")
    assert main(["check-weights", str(RESNET18), str(tmp_path / "w.pth"), "--head", "--num-classes", "10"]) == 1
    out = capsys.readouterr().out
    assert "/model/architecture/head:" in out
    assert "missing    head.classifier.1.bias" in out and "unexpected head.extra.weight" in out
    assert "would fail: 1 missing, 1 unexpected" in out


def test_remap_keys_rename_old_prefixes(tmp_path):
    shapes = {k.replace("backbone.", "encoder.", 1): tuple(s) for k, s in peer_keys("resnet18-classification").items()}
    target = load_target(RESNET18)
    assert not check_shapes(target, shapes).strict_ok
    report = check_shapes(target, shapes, remap={"encoder.": "backbone."})
    assert report.strict_ok and report.remapped == sum(k.startswith("encoder.") for k in shapes)


def test_reads_shapes_without_data_and_refuses_pickles(tmp_path, capsys):
    weights = _resnet18_weights(tmp_path)
    shapes, _ = read_shapes(weights)
    assert shapes["backbone.conv1.block.conv.weight"] == (64, 3, 7, 7)
    torch.save({"model": torch.nn.Linear(2, 2)}, tmp_path / "pickled.pth")  # a module, not a state dict
    assert main(["check-weights", str(RESNET18), str(tmp_path / "pickled.pth")]) == 1
    assert "not a state dict torch can load safely" in capsys.readouterr().err
    assert main(["check-weights", str(RESNET18), str(tmp_path / "missing.safetensors")]) == 2


REMAPPED = """\
model:
  task: classification
  name: remapped
  checkpoint:
    use_pretrained: false
    load_head: true
    path: ~
    optimizer_path: ~
    remap_keys: {"encoder.": "backbone.", "encoder.stages.": "backbone.stages.", "fc.": "head."}
  architecture:
    backbone:
      name: resnet
      params: {block_type: basicblock}
      stage_params: [{channels: 8, num_blocks: 1}]
    head:
      name: fc
      params: {num_layers: 1}
  losses: [{criterion: cross_entropy}]
"""


def test_the_compiled_module_applies_remap_keys_when_loading(tmp_path):
    from helpers import import_source

    spec = tmp_path / "remapped.yaml"
    spec.write_text(REMAPPED)
    target = load_target(spec)
    assert "key_remap = (" in target.source and "/model/checkpoint/remap_keys" in target.source
    model = target.module.build_model(num_classes=3)
    torch.manual_seed(1)
    trained = import_source(target.source, "remap_source", tmp_path).build_model(num_classes=3)
    old_names = {
        k.replace("backbone.", "encoder.", 1).replace("head.", "fc.", 1): v for k, v in trained.state_dict().items()
    }
    model.load_state_dict(old_names)  # strict by default: every renamed key must land
    for key, value in trained.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    shapes = {k: tuple(v.shape) for k, v in old_names.items()}
    assert check_shapes(target, shapes, remap=dict(target.spec.checkpoint.remap_keys)).strict_ok
