"""The specs bench/int8_accuracy.py trains (docs/deploy.md, "Measured accuracy cost") stay valid: each loads with
its training and data sections, compiles, and its model runs on a batch of its own validation data."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import REPO, compile_file, import_source

SPECS = sorted((REPO / "bench" / "int8_accuracy").glob("*.yaml"))


def test_there_is_one_spec_per_task():
    from npc.spec.run_config import load_run_config

    assert sorted(load_run_config(path).spec.task for path in SPECS) == [
        "classification",
        "detection",
        "pose_estimation",
        "segmentation",
    ]


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.stem)
def test_an_int8_accuracy_spec_compiles_and_runs_on_its_data(tmp_path, path):
    from npc.runtime.data import build_data
    from npc.spec.run_config import load_run_config

    config = load_run_config(path)
    data = build_data(config.data, ("valid",), task=config.spec.task)
    images = torch.stack([data.splits["valid"][i][0] for i in range(2)]).float()
    model = import_source(compile_file(path), path.stem.replace("-", "_"), tmp_path).build_model(data.num_classes)
    with torch.no_grad():
        outputs = model.eval()(images)
    tensors = [v for v in outputs.values() if isinstance(v, torch.Tensor)] or list(outputs["pred"])
    assert tensors and all(torch.isfinite(t).all() for t in tensors)
