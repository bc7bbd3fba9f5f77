"""Training behaviour on the tiny stand-in model and small digits: freeze, resume, interruption, outputs."""

import csv
import time

import pytest
import torch
from rich.console import Console

from npc.cli.exits import exit_code_for
from npc.runtime.checkpoint import load_training_state, load_weights, save_weights
from npc.runtime.engine import Interrupted, TrainOptions, train
from npc.runtime.engine import trainer as _train
from npc.runtime.engine.load_model import apply_checkpoint, freeze_backbone, import_model, keep_frozen_eval
from npc.spec.run_config import load_run_config

SMALL = """
epochs: 2
batch_size: 128
seed: 3
optimizer: {name: adamw, lr: 0.01}
scheduler: {name: cosine_no_sgdr, warmup_epochs: 1, warmup_bias_lr: 0.001}
ema: {name: constant_decay, decay: 0.9}
max_norm: 1.0
"""
DIGITS_16 = "format: digits\nimage_size: 16"


def _quiet():
    return Console(file=open("/dev/null", "w"), width=200)  # noqa: SIM115


def _run(spec, out, tiny_model_py, **kwargs):
    options = TrainOptions(out_dir=out, model_py=tiny_model_py, tensorboard=False, **kwargs)
    return train(load_run_config(spec), options, _quiet())


def test_freeze_backbone_keeps_weights_and_bn_statistics(tiny_model_py):
    model = import_model(tiny_model_py).build_model(5)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert freeze_backbone(model)
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    assert {id(p) for g in optimizer.param_groups for p in g["params"]} == {id(p) for p in model.head.parameters()}

    model.train()
    keep_frozen_eval(model)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(8, 3, 16, 16) * 3 + 1)["pred"], torch.arange(8) % 5)
    loss.backward()
    optimizer.step()

    after = model.state_dict()
    for key, value in before.items():
        if key.startswith("backbone."):  # weights AND running_mean/var/num_batches_tracked
            assert torch.equal(after[key], value), key
    assert not torch.equal(after["head.classifier.weight"], before["head.classifier.weight"])
    assert model.head.training and not model.backbone.training


def test_freeze_backbone_through_train_with_a_checkpoint(tmp_path, write_spec, tiny_model_py):
    start = import_model(tiny_model_py).build_model(7)  # another class count: load_head false
    save_weights(tmp_path / "start.safetensors", start.state_dict(), {})
    spec = write_spec(
        SMALL.replace("epochs: 2", "epochs: 1").replace("ema: {name: constant_decay, decay: 0.9}", "ema: ~"),
        DIGITS_16,
        use_pretrained=True,
        load_head=False,
        path=str(tmp_path / "start.safetensors"),
        freeze=True,
    )
    _run(spec, tmp_path / "run", tiny_model_py)
    trained, meta = load_weights(tmp_path / "run" / "last.safetensors")
    for key, value in start.state_dict().items():
        if key.startswith("backbone."):
            assert torch.equal(trained[key], value), key
    assert trained["head.classifier.weight"].shape == (10, 16) and meta["num_classes"] == 10


def _final(folder):
    weights, _ = load_weights(folder / "last.safetensors")
    state = load_training_state(folder / "training_state.pt")
    return weights, state


def _assert_same_run(a, b):
    (wa, sa), (wb, sb) = _final(a), _final(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wa[key], wb[key], rtol=0, atol=1e-6, msg=key)
    for key in sa["model"]:
        torch.testing.assert_close(sa["model"][key], sb["model"][key], rtol=0, atol=1e-6, msg=key)
    assert sa["epoch"] == sb["epoch"] == 2
    assert sa["best_metric"] == sb["best_metric"] and sa["metric"] == "top1"
    rows_a = list(csv.DictReader(open(a / "metrics.csv")))
    rows_b = list(csv.DictReader(open(b / "metrics.csv")))
    assert [(r["epoch"], r["train_loss"], r["valid_top1"]) for r in rows_a] == [
        (r["epoch"], r["train_loss"], r["valid_top1"]) for r in rows_b
    ]


def test_one_epoch_then_resume_equals_two_straight(tmp_path, write_spec, tiny_model_py):
    spec = write_spec(SMALL, DIGITS_16)
    _run(spec, tmp_path / "straight", tiny_model_py)
    first = _run(spec, tmp_path / "split", tiny_model_py, stop_after=1)
    assert first.epochs_done == 1
    _run(spec, tmp_path / "split", tiny_model_py, resume=tmp_path / "split")
    _assert_same_run(tmp_path / "straight", tmp_path / "split")


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path, write_spec, tiny_model_py, monkeypatch):
    spec = write_spec(SMALL, DIGITS_16)
    _run(spec, tmp_path / "straight", tiny_model_py)

    real_step = _train.Reporter.step

    def interrupt(self, global_step, *args):  # Ctrl-C a few steps into epoch 2 (12 steps per epoch)
        if global_step >= 15:
            raise KeyboardInterrupt
        real_step(self, global_step, *args)

    monkeypatch.setattr(_train.Reporter, "step", interrupt)
    with pytest.raises(Interrupted) as info:
        _run(spec, tmp_path / "cut", tiny_model_py)
    assert exit_code_for(info.value) == 130
    assert "--resume" in info.value.message and "holds epoch 1" in info.value.message
    assert load_training_state(tmp_path / "cut")["epoch"] == 1
    monkeypatch.undo()

    _run(spec, tmp_path / "cut", tiny_model_py, resume=tmp_path / "cut" / "training_state.pt")
    _assert_same_run(tmp_path / "straight", tmp_path / "cut")


def test_a_crash_while_saving_keeps_the_previous_epoch(tmp_path, write_spec, tiny_model_py, monkeypatch):
    spec = write_spec(SMALL.replace("ema: {name: constant_decay, decay: 0.9}", "ema: ~"), DIGITS_16)
    real_save = _train.write_weights
    calls = []

    def crash_in_epoch_2(path, state, meta):
        calls.append(meta["epoch"])
        if meta["epoch"] == 2 and path.name == "last.safetensors":
            raise OSError("disk full")
        real_save(path, state, meta)

    monkeypatch.setattr(_train, "write_weights", crash_in_epoch_2)
    with pytest.raises(OSError):
        _run(spec, tmp_path / "run", tiny_model_py)
    _, meta = load_weights(tmp_path / "run" / "last.safetensors")
    assert meta["epoch"] == 1 and load_training_state(tmp_path / "run")["epoch"] == 1


def test_a_failed_background_write_stops_the_run_early_and_the_state_claims_only_what_is_on_disk(
    tmp_path, write_spec, tiny_model_py, monkeypatch
):
    """Checkpoints are written while the next epoch trains: when one fails, the files queued after it (the
    training state) are not written, and the run stops at the next step with the write's error."""
    spec = write_spec(
        SMALL.replace("epochs: 2", "epochs: 3").replace("ema: {name: constant_decay, decay: 0.9}", "ema: ~"), DIGITS_16
    )
    real_save = _train.write_weights
    steps = []
    real_step = _train._train_step

    def fail_last_of_epoch_2(path, state, meta):
        if meta["epoch"] == 2 and path.name == "last.safetensors":
            raise OSError(28, "No space left on device")
        real_save(path, state, meta)

    def counted_step(run, batch, epoch, step):
        steps.append(epoch)
        if (epoch, step) == (2, 0):
            time.sleep(0.5)  # room for the queued writes to finish (and fail) before the next step's check
        return real_step(run, batch, epoch, step)

    monkeypatch.setattr(_train, "write_weights", fail_last_of_epoch_2)
    monkeypatch.setattr(_train, "_train_step", counted_step)
    with pytest.raises(OSError, match="No space left"):
        _run(spec, tmp_path / "run", tiny_model_py)
    _, meta = load_weights(tmp_path / "run" / "last.safetensors")
    assert meta["epoch"] == 1 and load_training_state(tmp_path / "run")["epoch"] == 1
    per_epoch = steps.count(0)
    assert per_epoch > 1 and steps.count(1) == per_epoch
    assert steps.count(2) <= 1  # stopped at the start of epoch 3, not after training it
    assert not list((tmp_path / "run").glob(".*.tmp"))  # no temp file left behind


def test_run_folder_contents(tmp_path, write_spec, tiny_model_py):
    spec = write_spec(SMALL.replace("epochs: 2", "epochs: 1"), DIGITS_16)
    options = TrainOptions(out_dir=tmp_path / "run", model_py=tiny_model_py, tensorboard=True)
    result = train(load_run_config(spec), options, _quiet())
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == [
        "best.safetensors",
        "last.safetensors",
        "metrics.csv",
        "model.py",
        "resolved.yaml",
        "tb",
        "training_state.pt",
    ]
    assert list((tmp_path / "run" / "tb").glob("events.out.tfevents.*"))
    assert (tmp_path / "run" / "model.py").read_text() == tiny_model_py.read_text()
    row = next(csv.DictReader(open(tmp_path / "run" / "metrics.csv")))
    assert float(row["valid_top1"]) == pytest.approx(result.best_top1, abs=1e-5)
    assert row["valid_top5"] != ""
    # resolved.yaml is itself a spec npc train accepts, with the defaults filled in
    again = load_run_config(tmp_path / "run" / "resolved.yaml")
    assert again.training == load_run_config(spec).training
    assert again.data["num_classes"] == 10


def test_resume_with_another_class_count_is_refused(tmp_path, write_spec, tiny_model_py, make_images):
    spec = write_spec(SMALL.replace("epochs: 2", "epochs: 1"), DIGITS_16)
    _run(spec, tmp_path / "run", tiny_model_py)
    for name in ("a", "b"):
        make_images(tmp_path / "imgs" / name, 2)
    other = write_spec(
        SMALL, f"path: {{root: {tmp_path / 'imgs'}, train: {{image: .}}}}\nimage_size: 16", name="o.yaml"
    )
    with pytest.raises(Exception, match="was trained with 10 classes; the data has 2"):
        _run(other, tmp_path / "run2", tiny_model_py, resume=tmp_path / "run")


def _fx_spec(write_spec, fx_path):
    spec = write_spec(SMALL.replace("epochs: 2", "epochs: 1"), DIGITS_16)
    spec.write_text(
        spec.read_text().replace("  freeze_backbone:", f"  fx_model_checkpoint: {fx_path}\n  freeze_backbone:")
    )
    return spec


def test_fx_model_checkpoint_is_refused_without_trust_and_loads_with_it(tmp_path, write_spec, tiny_model_py):
    start = import_model(tiny_model_py).build_model(10)
    torch.save(torch.fx.symbolic_trace(start), tmp_path / "start_fx.pt")  # what `npc export --to fx` writes
    spec = _fx_spec(write_spec, tmp_path / "start_fx.pt")

    with pytest.raises(_train.RunError, match="--trust-pickle"):
        _run(spec, tmp_path / "refused", tiny_model_py)
    assert not (tmp_path / "refused" / "last.safetensors").exists()

    config = load_run_config(spec)
    model = import_model(tiny_model_py).build_model(10)
    report, notes = apply_checkpoint(model, config.spec.checkpoint, trust_pickle=True)
    assert report.loaded == len(start.state_dict()) and "fx model" in notes[0]
    for key, value in start.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    _run(spec, tmp_path / "run", tiny_model_py, trust_pickle=True)  # and training starts from it
    assert (tmp_path / "run" / "last.safetensors").exists()


def test_fx_model_checkpoint_of_another_kind_is_an_error_not_a_traceback(tmp_path, write_spec, tiny_model_py):
    torch.save({"not": "a graph module"}, tmp_path / "dict.pt")
    config = load_run_config(_fx_spec(write_spec, tmp_path / "dict.pt"))
    model = import_model(tiny_model_py).build_model(10)
    with pytest.raises(_train.RunError, match="not a torch.fx GraphModule"):
        apply_checkpoint(model, config.spec.checkpoint, trust_pickle=True)


def test_mixed_precision_trains_under_bfloat16_autocast_and_resumes_exactly(tmp_path, write_spec, tiny_model_py):
    """`mixed_precision: true` on CPU is bfloat16 autocast (CUDA: float16 + GradScaler, not testable here): the
    forward runs in bfloat16, the loss in float32, it still learns, and a resumed run equals a straight one."""
    spec = write_spec(SMALL + "mixed_precision: true\n", DIGITS_16)
    _run(spec, tmp_path / "straight", tiny_model_py)
    _run(write_spec(SMALL, DIGITS_16, name="fp32.yaml"), tmp_path / "fp32", tiny_model_py)
    losses = {}
    for run in ("straight", "fp32"):
        with (tmp_path / run / "metrics.csv").open() as handle:
            losses[run] = [float(row["train_loss"]) for row in csv.DictReader(handle)]
    assert losses["straight"][-1] < losses["straight"][0]  # it learns
    assert losses["straight"] == pytest.approx(losses["fp32"], abs=0.05)  # as float32 does, within bfloat16's noise
    assert losses["straight"] != losses["fp32"]  # and autocast really ran
    resolved = (tmp_path / "straight" / "resolved.yaml").read_text()
    assert "mixed_precision: true" in resolved
    _run(spec, tmp_path / "split", tiny_model_py, stop_after=1)
    _run(spec, tmp_path / "split", tiny_model_py, resume=tmp_path / "split")
    _assert_same_run(tmp_path / "straight", tmp_path / "split")


def test_float16_on_cpu_is_refused_with_the_reason(tmp_path, write_spec, tiny_model_py):
    spec = write_spec(SMALL + "mixed_precision: float16\n", DIGITS_16)
    with pytest.raises(_train.RunError, match="float16 needs a CUDA device"):
        _run(spec, tmp_path / "run", tiny_model_py, device="cpu")


def test_channels_last_trains_the_same_run_in_nhwc(tmp_path, write_spec, tiny_model_py, monkeypatch):
    """`channels_last: true` is a speed option: the convs' weights are NHWC during training, the losses are those of
    the default format within float rounding, the saved weights load, and a resumed run equals a straight one."""
    formats = []
    first_forward = _train._first_forward

    def spy(model, images, path):
        weights = [p for p in model.parameters() if p.dim() == 4]
        formats.append(all(w.is_contiguous(memory_format=torch.channels_last) for w in weights) and bool(weights))
        return first_forward(model, images, path)

    monkeypatch.setattr(_train, "_first_forward", spy)
    spec = write_spec(SMALL + "channels_last: true\n", DIGITS_16)
    _run(spec, tmp_path / "straight", tiny_model_py)
    _run(write_spec(SMALL, DIGITS_16, name="nchw.yaml"), tmp_path / "nchw", tiny_model_py)
    assert formats == [True, False]
    losses = {}
    for run in ("straight", "nchw"):
        with (tmp_path / run / "metrics.csv").open() as handle:
            losses[run] = [float(row["train_loss"]) for row in csv.DictReader(handle)]
    assert losses["straight"] == pytest.approx(losses["nchw"], rel=1e-3)  # rounding, grown over 2 epochs
    _run(spec, tmp_path / "split", tiny_model_py, stop_after=1)
    _run(spec, tmp_path / "split", tiny_model_py, resume=tmp_path / "split")
    _assert_same_run(tmp_path / "straight", tmp_path / "split")


def test_channels_last_leaves_weights_of_other_ranks_as_they_are():
    """YOLOv9's head has a Conv3d: ``Module.to(memory_format=channels_last)`` refuses such a model outright."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Conv3d(1, 1, 1))
    _train._to_channels_last(model)
    assert model[0].weight.is_contiguous(memory_format=torch.channels_last) and not model[0].weight.is_contiguous()
    assert model[1].weight.is_contiguous() and isinstance(model[0].weight, torch.nn.Parameter)
    assert model[0](torch.randn(1, 3, 8, 8)).shape == (1, 4, 6, 6)
