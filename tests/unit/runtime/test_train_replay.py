"""What `npc train` does to the weights is the optimiser's steps on the batches its loader made, and nothing else.

A detection run (YOLOX loss, flips, weight decay, a warm-up then cosine schedule, validation and checkpoints every
epoch) records the batches it trains on, the learning rate of each step and the weights before the first one. A
plain loop of textbook steps over those batches (forward, loss, zero_grad, backward, AdamW step) must then end with
bit-identical weights and BatchNorm statistics: validation, saving, logging and the epoch boundaries change nothing.
This is how a training difference against NetsPresso Trainer was narrowed down (docs/benchmarks.md, "Detection's
metric against the peer's"); it would catch, say, an evaluation pass that leaves the model in training mode.
"""

import importlib.util

import torch

from helpers import TINY_RESNET_BACKBONE
from npc.runtime.checkpoint import load_weights
from npc.runtime.engine import trainer
from npc.runtime.engine.optim import build_optimizer
from npc.runtime.losses.build import build_loss
from npc.spec.run_config import load_run_config

SPEC = (
    """\
model:
  task: detection
  name: tiny_yolox
  architecture:
"""
    + TINY_RESNET_BACKBONE
    + """\
    neck: {name: fpn, params: {num_outs: 2}}
    head: {name: anchor_free_decoupled_head}
  losses: [{criterion: yolox_loss, l1_activate_epoch: 2}]
training:
  epochs: 3
  batch_size: 8
  seed: 5
  optimizer: {name: adamw, lr: 0.003, weight_decay: 0.0005}
  scheduler: {name: cosine_no_sgdr, warmup_epochs: 1, warmup_bias_lr: 0.0001, min_lr: 0.00001}
data: {format: shapes, image_size: 32, num_train: 24, num_valid: 8}
augmentation:
  train:
    - {name: randomhorizontalflip, p: 0.5}
"""
)


def _record(monkeypatch):
    """Each training step's batch and learning rate; the weights before the first step."""
    seen = {"steps": [], "initial": None}
    forward = trainer._forward

    def recording(run, images, target):
        if seen["initial"] is None:
            seen["initial"] = {k: v.clone() for k, v in run.net.state_dict().items()}
        lr = run.optimizer.param_groups[0]["lr"]
        seen["steps"].append((images.clone(), [{k: v.clone() for k, v in t.items()} for t in target], lr))
        return forward(run, images, target)

    monkeypatch.setattr(trainer, "_forward", recording)
    return seen


def test_training_is_the_optimiser_steps_on_the_loaded_batches_and_nothing_else(capsys, tmp_path, monkeypatch):
    from npc.cli import main

    spec = tmp_path / "spec.yaml"
    spec.write_text(SPEC)
    seen = _record(monkeypatch)
    code = main(["train", str(spec), "--out", str(tmp_path / "run"), "--no-tensorboard"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    steps_per_epoch = 24 // 8
    assert len(seen["steps"]) == 3 * steps_per_epoch

    config = load_run_config(tmp_path / "run" / "resolved.yaml")
    module_spec = importlib.util.spec_from_file_location("replayed", tmp_path / "run" / "model.py")
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    model = module.build_model(3)
    model.load_state_dict(seen["initial"])
    optimizer = build_optimizer(model, config.training["optimizer"])
    loss_fn, _ = build_loss(config.spec.losses, task="detection", head="anchor_free_decoupled_head")
    for index, (images, targets, lr) in enumerate(seen["steps"]):
        loss_fn.set_epoch(index // steps_per_epoch + 1)  # the L1 term joins in epoch 2
        for group in optimizer.param_groups:
            group["lr"] = lr
        model.train()
        loss, _ = loss_fn(model(images), targets, tuple(images.shape[-2:]))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    assert "augmenting each training batch (kornia): randomhorizontalflip" in out
    assert len({lr for _, _, lr in seen["steps"]}) == 3, "the schedule did not change the learning rate per epoch"
    trained, _ = load_weights(tmp_path / "run" / "last.safetensors")
    replayed = model.state_dict()
    assert trained.keys() == replayed.keys()
    for key, value in trained.items():
        assert torch.equal(value, replayed[key]), f"{key} differs from the plain loop's"
