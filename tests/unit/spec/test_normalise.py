"""normalise(): the spellings a spec may use for one thing become one internal form.

Both checkpoint forms give the same :class:`Checkpoint`, ``full: ~`` / ``full: {name: ~}`` / no ``full`` give the
same components, and a loss weight of ``~`` (or none) is 1.0. Every input here is first checked to be valid.
"""

from __future__ import annotations

import pytest

from npc.spec import Checkpoint, ComponentSpec, ModelSpec, format_text, load_text, normalise, validate

ARCHITECTURE = """\
  architecture:
    {full}
    backbone:
      name: resnet
      params: {{block_type: basicblock}}
      stage_params:
        - {{channels: 64, num_blocks: 2}}
        - {{channels: 128, num_blocks: 2}}
    head:
      name: fc
      params: {{num_layers: 1}}
"""


def spec_of(model_fields: str, *, full: str = "full: ~", losses: str = "") -> ModelSpec:
    text = "model:\n  task: classification\n  name: resnet18\n" + model_fields + ARCHITECTURE.format(full=full) + losses
    source = load_text(text, "spec.yaml")
    diagnostics = validate(source)
    assert diagnostics == [], format_text(diagnostics)
    return normalise(source.data, source.path)


# --- checkpoint: the documented flat form and the object form ---------------------------------------------

FLAT_FULL = """\
  checkpoint: ./weights/resnet18.safetensors
  fx_model_checkpoint: ~
  resume_optimizer_checkpoint: ./runs/exp1/optimizer.pth
  load_checkpoint_head: false
"""
OBJECT_FULL = """\
  checkpoint:
    use_pretrained: true
    load_head: false
    path: ./weights/resnet18.safetensors
    optimizer_path: ./runs/exp1/optimizer.pth
"""


def test_flat_and_object_checkpoint_forms_normalise_alike():
    expected = Checkpoint(
        path="./weights/resnet18.safetensors",
        use_pretrained=True,
        load_head=False,
        optimizer_path="./runs/exp1/optimizer.pth",
        fx_model=None,
    )
    assert spec_of(FLAT_FULL).checkpoint == expected
    assert spec_of(OBJECT_FULL).checkpoint == expected


@pytest.mark.parametrize(
    "fields",
    [
        "",
        "  checkpoint: ~\n",
        "  checkpoint: ~\n  fx_model_checkpoint: ~\n  resume_optimizer_checkpoint: ~\n",
        "  checkpoint:\n    use_pretrained: false\n    load_head: true\n    path: ~\n    optimizer_path: ~\n",
        "  checkpoint: {}\n",
    ],
    ids=["absent", "flat-null", "flat-all-null", "object-nulls", "object-empty"],
)
def test_no_checkpoint_in_either_form_is_the_default(fields):
    assert spec_of(fields).checkpoint == Checkpoint()


def test_flat_path_defaults_to_loading_the_head():
    expected = Checkpoint(path="./w.safetensors", use_pretrained=True, load_head=True)
    assert spec_of("  checkpoint: ./w.safetensors\n").checkpoint == expected
    assert spec_of("  checkpoint: {use_pretrained: true, path: ./w.safetensors}\n").checkpoint == expected


@pytest.mark.parametrize(
    "fields",
    [
        "  checkpoint: ~\n  fx_model_checkpoint: ./compressed.pt\n",
        "  fx_model_checkpoint: ./compressed.pt\n",
        "  checkpoint: {use_pretrained: false, path: ~}\n  fx_model_checkpoint: ./compressed.pt\n",
        "  fx_model_path: ./compressed.pt\n",
    ],
    ids=["flat", "flat-no-checkpoint", "object", "older-name-fx_model_path"],
)
def test_fx_model_checkpoint_in_either_form(fields):
    assert spec_of(fields).checkpoint == Checkpoint(fx_model="./compressed.pt")


def test_peer_style_object_without_path_keeps_its_flags():
    checkpoint = spec_of("  checkpoint: {use_pretrained: true, load_head: false, path: ~, optimizer_path: ~}\n")
    assert checkpoint.checkpoint == Checkpoint(path=None, use_pretrained=True, load_head=False)


# --- architecture: full: ~ and full: {name: ~} --------------------------------------------------------------


@pytest.mark.parametrize("full", ["full: ~", "full: {name: ~}", "full:\n      name: ~", "", "full:"])
def test_absent_full_model_builds_from_backbone_and_head(full):
    spec = spec_of("", full=full)
    assert not spec.is_full
    assert spec.components == (
        ComponentSpec(
            kind="backbone",
            name="resnet",
            params={"block_type": "basicblock"},
            stage_params=[{"channels": 64, "num_blocks": 2}, {"channels": 128, "num_blocks": 2}],
            pointer="/model/architecture/backbone",
        ),
        ComponentSpec("head", "fc", {"num_layers": 1}, None, "/model/architecture/head"),
    )


def test_full_model_keeps_its_inline_params():
    text = """\
model:
  task: segmentation
  name: pidnet_s
  architecture:
    full: {name: pidnet, m: 2, n: 3, channels: 32}
    backbone: ~
    head: ~
"""
    source = load_text(text, "pidnet.yaml")
    assert validate(source) == []
    spec = normalise(source.data, source.path)
    assert spec.is_full
    assert spec.components == (
        ComponentSpec("full", "pidnet", {"m": 2, "n": 3, "channels": 32}, None, "/model/architecture/full"),
    )


# --- losses ----------------------------------------------------------------------------------------------------

LOSSES = """\
  losses:
    - criterion: cross_entropy
      label_smoothing: 0.1
      weight: ~
    - criterion: focal_loss
    - criterion: cross_entropy
      weight: 0.5
"""


def test_loss_weight_defaults_to_one_and_params_are_the_other_keys():
    losses = spec_of("", losses=LOSSES).losses
    assert [(loss.criterion, loss.weight, loss.params, loss.pointer) for loss in losses] == [
        ("cross_entropy", 1.0, {"label_smoothing": 0.1}, "/model/losses/0"),
        ("focal_loss", 1.0, {}, "/model/losses/1"),
        ("cross_entropy", 0.5, {}, "/model/losses/2"),
    ]
    assert all(isinstance(loss.weight, float) for loss in losses)


@pytest.mark.parametrize("losses", ["", "  losses: ~\n", "  losses: []\n"], ids=["absent", "null", "empty"])
def test_no_losses(losses):
    assert spec_of("", losses=losses).losses == ()


def test_common_fields():
    spec = spec_of("  freeze_backbone: true\n")
    assert (spec.task, spec.name, spec.freeze_backbone, spec.path) == ("classification", "resnet18", True, "spec.yaml")
    assert spec_of("").freeze_backbone is False
