"""The peer's own published files, unchanged, for one epoch each on tiny data sets in the peer's layouts (extra
check: skipped without ``../shared/peer``). The project's own tests use npc-written equivalents
(``test_peer_files.py``, ``test_peer_train.py``).

Each run is the peer's one command (``--model ... --environment``) from a folder holding ``./data/<set>`` where the
peer's data YAML points, with ``--epochs 1`` (the recipes' 30-300 epochs are what they are); a split smaller than
one batch trains its one batch.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.helpers import REPO, run_cli

PEER = REPO.parent / "shared" / "peer" / "configs"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not PEER.is_dir(), reason=f"the peer's published configs are not at {PEER}"),
]
NAMES = ["person", "bicycle"]


def _picture(path: Path, size=(48, 64)) -> None:
    from PIL import Image

    pixels = np.full((*size, 3), 90, np.uint8)
    pixels[10:30, 20:44] = (220, 40, 40)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)


def _detection_set(root: Path) -> None:
    for split, count in (("train", 4), ("valid", 2)):
        for i in range(count):
            _picture(root / "images" / split / f"{i:012d}.jpg")
            label = root / "labels" / split / f"{i:012d}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(f"{i % 2} 0.5 0.4 0.375 0.4167\n")
    (root / "id_mapping.json").write_text(json.dumps(NAMES))


def _classification_set(root: Path) -> None:
    for split, csv_name in (("train", "imagenet_train.csv"), ("valid", "imagenet_valid.csv")):
        rows = []
        for i in range(4):
            _picture(root / "images" / split / f"{i}.jpg")
            rows.append(f"{i}.jpg,{NAMES[i % 2]}")
        (root / "labels").mkdir(parents=True, exist_ok=True)
        (root / "labels" / csv_name).write_text("image_id,class\n" + "\n".join(rows) + "\n")
    (root / "id_mapping.json").write_text(json.dumps(NAMES))


def _segmentation_set(root: Path) -> None:
    from PIL import Image

    for split in ("train", "valid"):
        for i in range(2):
            _picture(root / "images" / split / f"{i}.jpg")
            mask = np.zeros((48, 64), np.uint8)
            mask[10:30, 20:44] = 1
            (root / "labels" / split).mkdir(parents=True, exist_ok=True)
            Image.fromarray(mask, mode="L").save(root / "labels" / split / f"{i}.png")
    (root / "id_mapping.json").write_text(json.dumps(["background", "aeroplane"]))


def _train(capsys, folder: Path, files: dict[str, Path]) -> tuple[int, str, str]:
    argv = ["train", "--model", files["model"]]
    for name in ("data", "augmentation", "training", "logging", "environment"):
        argv += [f"--{name}", files[name]]
    return run_cli(capsys, *argv, "--epochs", "1", "--device", "cpu")  # gpus: 0..7 would start torchrun on GPUs


def _check_run(folder: Path) -> None:
    (run,) = (folder / "outputs").iterdir()  # logging.output_dir: ./outputs
    for name in ("best.safetensors", "epoch_1.safetensors", "best.onnx", "samples/predictions.json"):
        assert (run / name).is_file(), name


@pytest.mark.parametrize(
    "recipe", sorted(p.name for p in PEER.glob("benchmark_examples/detection-*")) if PEER.is_dir() else []
)
def test_a_peer_detection_benchmark_recipe_runs_unchanged(capsys, monkeypatch, tmp_path, recipe):
    _detection_set(tmp_path / "data" / "coco2017")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))  # yolo_fastest_v2's data.yaml says ~/data/coco2017
    folder = PEER / "benchmark_examples" / recipe
    files = {name: folder / f"{name}.yaml" for name in ("model", "data", "augmentation", "training", "logging")}
    code, out, err = _train(capsys, tmp_path, {**files, "environment": folder / "environment.yaml"})
    assert code == 0, out + err
    _check_run(tmp_path)


def _top_level() -> dict[str, Path]:
    return {key: PEER / f"{key}.yaml" for key in ("training", "logging", "environment")}


def test_the_peers_classification_files_run_unchanged(capsys, monkeypatch, tmp_path):
    _classification_set(tmp_path / "data" / "imagenet1k")
    monkeypatch.chdir(tmp_path)
    files = {
        **_top_level(),
        "model": PEER / "model" / "resnet" / "resnet18-classification.yaml",
        "data": PEER / "data" / "local" / "imagenet1k.yaml",
        "augmentation": PEER / "augmentation" / "classification.yaml",
    }
    code, out, err = _train(capsys, tmp_path, files)
    assert code == 0, out + err
    _check_run(tmp_path)


def test_the_peers_segmentation_files_run_unchanged(capsys, monkeypatch, tmp_path):
    _segmentation_set(tmp_path / "data" / "voc2012_seg")
    monkeypatch.chdir(tmp_path)
    files = {
        **_top_level(),
        "model": PEER / "model" / "segformer" / "segformer-b0-segmentation.yaml",
        "data": PEER / "data" / "local" / "voc12.yaml",
        "augmentation": PEER / "augmentation" / "segmentation.yaml",
    }
    code, out, err = _train(capsys, tmp_path, files)
    assert code == 0, out + err
    _check_run(tmp_path)


def _pose_set(root: Path, keypoints: int = 98) -> None:
    """WFLW's layout: one label line per face, ``x y visible`` per keypoint then the box; each keypoint its own mirror
    twin (the flip in the peer's recipe needs swap pairs)."""
    for split, count in (("train", 4), ("valid", 2)):
        for i in range(count):
            _picture(root / "images" / split / f"{i}.jpg")
            rng = np.random.RandomState(i)
            points = np.stack([rng.uniform(20, 44, keypoints), rng.uniform(10, 30, keypoints), np.ones(keypoints)], 1)
            label = root / "labels" / split / f"{i}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(" ".join(f"{v:g}" for v in points.flatten()) + " 16 6 48 34\n")
    names = [{"name": f"p{k}", "swap": f"p{k}"} for k in range(keypoints)]
    (root / "id_mapping.json").write_text(json.dumps(names))


def test_the_peers_pose_files_run_unchanged(capsys, monkeypatch, tmp_path):
    """RTMPose with the peer's pose recipe: posetopdownaffine in train (jittered) and inference (the plain crop)."""
    _pose_set(tmp_path / "data" / "wflw")
    monkeypatch.chdir(tmp_path)
    files = {
        **_top_level(),
        "model": PEER / "model" / "rtmpose" / "rtmpose-pose_estimation.yaml",
        "data": PEER / "data" / "local" / "wflw.yaml",
        "augmentation": PEER / "augmentation" / "pose_estimation.yaml",
    }
    code, out, err = _train(capsys, tmp_path, files)
    assert code == 0, out + err
    assert "randomhorizontalflip, posetopdownaffine" in out
    (run,) = (tmp_path / "outputs").iterdir()
    for name in ("best.safetensors", "epoch_1.safetensors", "samples/predictions.json"):
        assert (run / name).is_file(), name
    # the peer's logging.yaml exports at sample_input_size [512, 512]; the rtmcc head takes its 256x256 crops only
    assert "warning: logging.onnx_export_opset: forward pass on a (1, 3, 512, 512) input failed" in out
