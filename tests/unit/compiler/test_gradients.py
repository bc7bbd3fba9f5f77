"""Every parameter of every example model takes part in training: one forward in train mode and a backward give
each a gradient (timm's test_model_backward). DistributedDataParallel waits for a gradient of every parameter
unless told otherwise, so a parameter that never gets one must be known and named here, with the reason.
"""

from __future__ import annotations

import pytest
import torch

from helpers import EXAMPLES, compile_file, import_source
from npc.runtime.engine.load_model import _tensors, unused_in_training  # the probe's own walk over outputs
from npc.spec import load_spec
from npc.spec.run_config import pose_input_size

# Small inputs keep the test fast; every family accepts these (MobileViT needs a multiple of 64).
INPUT_SIDE = {"classification": 64, "segmentation": 128, "detection": 128}
# Parameters the peer's architecture keeps although a training forward does not use them (state_dict parity).
UNUSED_IN_TRAINING = {
    # EfficientFormer's final norm feeds only its classification output; a detection neck reads the stages.
    "efficientformer-l1-detection": {"backbone.norm.weight", "backbone.norm.bias"},
    # RT-DETR's denoising queries are built from the batch's boxes, which this target-free forward does not feed
    # (the runtime feeds them, and wraps RT-DETR in DDP with find_unused_parameters for batches without boxes).
    "rtdetr-r18-detection": {"head.denoising_class_embed.weight"},
}


@pytest.mark.slow  # full-size example models: about 3 minutes for all of them on 2 cores
@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_every_parameter_gets_a_gradient_from_one_training_step(path, tmp_path):
    torch.manual_seed(0)
    spec = load_spec(path)
    module = import_source(compile_file(path), f"grad_{path.stem.replace('-', '_')}", tmp_path)
    model = module.build_model(num_classes=3).train()
    height, width = pose_input_size(spec) if spec.task == "pose_estimation" else (INPUT_SIDE[spec.task],) * 2
    outputs = model(torch.randn(2, 3, height, width))
    sum(tensor.float().mean() for tensor in _tensors(outputs) if tensor.requires_grad).backward()
    without = {name for name, p in model.named_parameters() if p.requires_grad and p.grad is None}
    assert without == UNUSED_IN_TRAINING.get(path.stem, set())
    non_finite = [name for name, p in model.named_parameters() if p.grad is not None and not p.grad.isfinite().all()]
    assert non_finite == []
    # What npc train finds on a meta copy before wrapping the model in DDP agrees with the real step.
    assert set(unused_in_training(model, (height, width))) == without
