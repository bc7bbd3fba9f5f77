"""Training from NetsPresso Trainer's six files, with its semantics: one command, the peer's learning rate in every
epoch, its dropped last batch, its validation and checkpoint epochs and its best-model choice."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from npc.runtime.checkpoint import load_weights
from npc.runtime.engine import TrainOptions, train
from npc.runtime.engine import trainer as _train
from npc.runtime.engine.optim import lr_at
from npc.spec.run_config import load_run_config
from tests.helpers import run_cli
from tests.unit.runtime.test_peer_files import AUGMENTATION, DATA, ENVIRONMENT, LOGGING, TRAINING

TRAIN_IMAGES = 20  # with batch_size 8: 2 full batches, the last 4 images dropped as the peer does


@pytest.fixture
def peer_run(tmp_path, write_spec, make_images):
    """The six files for a tiny local CSV data set (the peer's layout), 3 epochs, validation every 2."""
    root = tmp_path / "dataset"
    for split, count in (("train", TRAIN_IMAGES), ("valid", 6)):
        names = make_images(root / "images" / split, count, size=20)
        (root / "labels").mkdir(exist_ok=True)
        rows = [f"{name},{'ab'[i % 2]}" for i, name in enumerate(names)]
        (root / "labels" / f"{split}.csv").write_text("image_id,class\n" + "\n".join(rows) + "\n")
    texts = {
        "training": TRAINING.replace("epochs: 8", "epochs: 3").replace("end_epoch: 8", "end_epoch: 3"),
        "environment": ENVIRONMENT.replace("batch_size: 32", "batch_size: 8"),
        "logging": LOGGING.replace("./outputs", str(tmp_path / "outputs"))
        .replace("tensorboard: true", "tensorboard: false")
        .replace("num_save_samples: ~", "num_save_samples: 3"),
        "data": DATA.format(root=root),
        "augmentation": AUGMENTATION.replace("64", "32"),
    }
    files = {"model": write_spec(name="model.yaml")}
    for name, text in texts.items():
        files[name] = tmp_path / f"{name}.yaml"
        files[name].write_text(text)
    return files


def _argv(files: dict[str, Path]) -> list:
    argv = ["train", "--model", files["model"]]
    for name in ("data", "augmentation", "training", "logging", "environment"):
        argv += [f"--{name}", files[name]]
    return argv


def _rows(run: Path) -> list[dict[str, str]]:
    with open(run / "metrics.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def test_the_six_files_train_with_one_command_and_the_peers_semantics(capsys, peer_run, tmp_path):
    code, out, err = run_cli(capsys, *_argv(peer_run))
    assert code == 0, out + err
    run = tmp_path / "outputs" / "model"  # logging.output_dir / the model file's name: no --out needed
    rows = _rows(run)
    # the peer's learning rate of each epoch (warm-up of one epoch already at lr), as its scheduler gives it
    s = {"name": "cosine_no_sgdr", "warmup_epochs": 1, "warmup_bias_lr": 1e-5, "min_lr": 1e-5, "end_epoch": 3}
    assert [float(r["lr"]) for r in rows] == pytest.approx([lr_at(e, 1e-3, s, 3) for e in range(3)], rel=1e-3)
    assert float(rows[0]["lr"]) == pytest.approx(1e-3)
    # validation_epoch 2: epochs 1 and 3 (the last) are validated, epoch 2 is not
    assert [r["valid_loss"] != "" for r in rows] == [True, False, True]
    # save_best_only false, save_checkpoint_epoch 2: epoch_1 and epoch_3 (the last) are kept
    assert sorted(p.name for p in run.glob("epoch_*.safetensors")) == ["epoch_1.safetensors", "epoch_3.safetensors"]
    # best_model_criterion loss: the validated epoch with the lowest valid loss
    losses = {int(r["epoch"]): float(r["valid_loss"]) for r in rows if r["valid_loss"]}
    _, meta = load_weights(run / "best.safetensors")
    assert meta["epoch"] == min(losses, key=losses.get)
    # the input size came from the augmentation (32), not data.image_size's default (224)
    assert load_run_config(run / "resolved.yaml").data["image_size"] == 32
    assert not (run / "tb").exists()  # logging.tensorboard: false
    # num_save_samples: 3 validation images with the best weights' predictions; onnx_export_opset: best.onnx
    samples = json.loads((run / "samples" / "predictions.json").read_text())
    assert len(samples) == 3 and all(s["label"] in ("a", "b") and s["true_label"] in ("a", "b") for s in samples)
    assert len(list((run / "samples" / "inputs").glob("*.png"))) == 3
    assert (run / "best.onnx").is_file() and "logging.onnx_export_opset: " in out and "1×3×64×64" in out


def test_the_last_partial_batch_is_dropped(monkeypatch, peer_run, tmp_path, tiny_model_py):
    steps = []
    original = _train._train_step

    def counting(run, batch, epoch, step):
        steps.append(len(batch[0]))
        return original(run, batch, epoch, step)

    monkeypatch.setattr(_train, "_train_step", counting)
    config = load_run_config(
        peer_run["model"],
        training_path=peer_run["training"],
        data_path=peer_run["data"],
        augmentation_path=peer_run["augmentation"],
        environment_path=peer_run["environment"],
        logging_path=peer_run["logging"],
        overrides={"epochs": 1},
    )
    from rich.console import Console

    train(
        config, TrainOptions(out_dir=tmp_path / "run", model_py=tiny_model_py, tensorboard=False), Console(quiet=True)
    )
    assert steps == [8, 8]  # 20 images: 2 batches of 8; NetsPresso drops the last 4 (npc used to train 3 steps)


def test_metric_criterion_picks_the_best_metric_epoch(capsys, peer_run, tmp_path):
    peer_run["logging"].write_text(
        peer_run["logging"].read_text().replace("best_model_criterion: loss", "best_model_criterion: metric")
    )
    code, out, err = run_cli(capsys, *_argv(peer_run), "--out", tmp_path / "run")
    assert code == 0, out + err
    rows = [r for r in _rows(tmp_path / "run") if r["valid_top1"]]
    _, meta = load_weights(tmp_path / "run" / "best.safetensors")
    best = max(rows, key=lambda r: float(r["valid_top1"]))  # the first of equals, as the peer's max()
    assert meta["epoch"] == int(best["epoch"])
    assert "best (best valid metric)" in out
