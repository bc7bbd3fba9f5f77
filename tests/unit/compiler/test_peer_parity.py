"""Parity with NetsPresso Trainer: parameter count, state_dict keys and shapes, output shapes (num_classes=10).

Parametrised over every peer config whose families compile, so each zoo family is checked the moment it lands.
"""

import pytest
import torch

from helpers import ZOO_SPECS, compile_file, compiles, import_source, peer_keys, peer_results

CASES = [path for path in ZOO_SPECS if compiles(path)]


def _shapes(value):
    if value is None:  # results.json records an output that is None by its type name (RT-DETR in eval mode)
        return "NoneType"
    if isinstance(value, torch.Tensor):
        return list(value.shape)
    if isinstance(value, (list, tuple)):
        return [_shapes(v) for v in value]
    return value


@pytest.mark.parametrize("config", CASES, ids=[p.stem for p in CASES])
def test_matches_the_peer(config, tmp_path):
    expected = peer_results()[config.stem]
    module = import_source(compile_file(config), f"parity_{config.stem.replace('-', '_')}", tmp_path)
    model = module.build_model(num_classes=10).eval()

    assert sum(p.numel() for p in model.parameters()) == expected["params"]
    ours = {key: list(tensor.shape) for key, tensor in model.state_dict().items()}
    theirs = peer_keys(config.stem)
    assert sorted(set(ours) - set(theirs)) == [], "keys the peer does not have"
    assert sorted(set(theirs) - set(ours)) == [], "keys the peer has and we lack"
    assert {k: v for k, v in ours.items() if theirs[k] != v} == {}, "shape mismatches"

    with torch.no_grad():
        output = model(torch.zeros(expected["input"]))
    assert {key: _shapes(value) for key, value in output.items()} == expected["output"]


def test_the_compiler_core_configs_are_covered():
    stems = {p.stem for p in CASES}
    core = {
        "resnet18-classification",
        "resnet34-classification",
        "resnet50-classification",
        "resnet50-segmentation",
        "resnet50-detection",
    }
    assert core <= stems, f"not compilable yet: {sorted(core - stems)}"
