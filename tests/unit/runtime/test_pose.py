"""Pose estimation end to end: a tiny rtmcc spec trains on the built-in stick figures, evaluates and predicts;
NetsPresso's local keypoint layout is read and cropped; bad data names the file; the metrics score what they say."""

import csv
import json
import math

import numpy as np
import pytest
import torch

from helpers import TINY_POSE_MODEL, run_cli
from npc.cli import main
from npc.runtime.data import build_data
from npc.runtime.data.pose import FIGURE_KEYPOINTS
from npc.runtime.engine.load_model import check_output
from npc.runtime.engine.metrics import decode_simcc, oks_ap, pose_meters
from npc.runtime.errors import DataError, RunError

SPEC = (
    TINY_POSE_MODEL
    + """\
training:
  epochs: 2
  batch_size: 8
  num_workers: 0
  optimizer: {name: adamw, lr: 0.003}
"""
)
FIGURES = "data: {num_train: 32, num_valid: 16}\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 2-epoch run on the built-in stick figures (shared: training is the slow part)."""
    folder = tmp_path_factory.mktemp("pose")
    spec = folder / "pose.yaml"
    spec.write_text(SPEC + FIGURES)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as conftest's per-test fixture, which a module fixture runs before
    try:
        code = main(["train", str(spec), "--out", str(folder / "run"), "--no-tensorboard"])
    finally:
        torch.set_num_threads(threads)
    assert code == 0
    return spec, folder / "run"


def test_train_on_stick_figures_lowers_a_finite_loss(trained):
    _, run = trained
    with open(run / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    losses = [float(r["train_loss"]) for r in rows]
    assert len(rows) == 2 and all(math.isfinite(v) for v in losses)
    assert losses[1] < losses[0]
    assert all(0.0 <= float(r["valid_pck"]) <= 1.0 for r in rows)
    assert (run / "best.safetensors").is_file()


def test_evaluate_reports_pck_and_oks_ap(trained, capsys):
    _, run = trained
    code, out, _ = run_cli(capsys, "evaluate", run, "--format", "json")
    result = json.loads(out)
    assert code == 0 and result["metrics"] == ["pck", "oks_ap"]
    assert result["samples"] == 16 and 0.0 <= result["pck"] <= 1.0 and 0.0 <= result["oks_ap"] <= 1.0
    assert result["notes"] == []  # the weights' recorded preprocessing is the data's (no mismatch warning)


def test_predict_writes_keypoints_json_and_a_drawing(trained, tmp_path, capsys):
    from PIL import Image

    _, run = trained
    image = tmp_path / "person.png"
    Image.new("RGB", (60, 90), (20, 20, 20)).save(image)
    code, out, _ = run_cli(capsys, "predict", run, image, "--keypoints", tmp_path / "out")
    assert code == 0 and "head " in out
    record = json.loads((tmp_path / "out" / "person.keypoints.json").read_text())
    assert [k["name"] for k in record["keypoints"]] == list(FIGURE_KEYPOINTS)
    assert all(0 <= k["x"] <= 60 and 0 <= k["y"] <= 90 for k in record["keypoints"])  # in the image's pixels
    with Image.open(tmp_path / "out" / "person.keypoints.png") as drawing:
        assert drawing.size == (60, 90)


def test_stick_figures_are_deterministic_and_inside_the_image():
    config = {"format": "stick_figures", "num_train": 4, "num_valid": 4, "seed": 0, "input_size": [40, 30]}
    first = build_data(config, ("train", "valid"), task="pose_estimation")
    again = build_data(config, ("train", "valid"), task="pose_estimation")
    image, keypoints = first.splits["train"][3]
    assert image.shape == (3, 40, 30) and keypoints.shape == (len(FIGURE_KEYPOINTS), 3)
    assert torch.equal(image, again.splits["train"][3][0]) and torch.equal(keypoints, again.splits["train"][3][1])
    assert not torch.equal(keypoints, first.splits["valid"][3][1])  # the splits draw other figures
    assert (keypoints[:, 0] < 30).all() and (keypoints[:, 1] < 40).all() and (keypoints[:, :2] >= 0).all()


def _local(tmp_path, labels: dict[str, str], id_mapping=None, sizes=None):
    """A NetsPresso local pose layout under tmp_path: images/train/<name>.png, labels/train/<name>.txt."""
    from PIL import Image

    (tmp_path / "images" / "train").mkdir(parents=True)
    (tmp_path / "labels" / "train").mkdir(parents=True)
    for name, text in labels.items():
        Image.new("RGB", (sizes or {}).get(name, (40, 30)), (90, 90, 90)).save(
            tmp_path / "images/train" / f"{name}.png"
        )
        if text is not None:
            (tmp_path / "labels/train" / f"{name}.txt").write_text(text)
    config = {
        "format": "local",
        "path": {"root": str(tmp_path), "train": {"image": "images/train", "label": "labels/train"}},
        "id_mapping": id_mapping,
        "input_size": [16, 16],
        "mean": [0.5, 0.5, 0.5],
        "std": [0.5, 0.5, 0.5],
    }
    return config


def test_local_layout_crops_each_person_and_moves_its_keypoints(tmp_path):
    # two people in a.png: the first's 20x20 box (10, 5)-(30, 25) becomes the 16x16 input (scale 0.8)
    labels = {"a": "20 15 2  10 5 1  0 0 0  10 5 30 25\n5 5 1  6 6 1  7 7 1  0 0 10 10\n", "b": None}
    config = _local(tmp_path, labels, id_mapping=[{"name": "nose", "swap": ""}, {"name": "l"}, {"name": "r"}])
    data = build_data(config, ("train",), task="pose_estimation")
    assert data.num_classes == 3 and data.class_names == ["nose", "l", "r"] and len(data.splits["train"]) == 2
    image, keypoints = data.splits["train"][0]
    assert image.shape == (3, 16, 16)
    assert torch.allclose(keypoints, torch.tensor([[8.0, 8.0, 1.0], [0.0, 0.0, 1.0], [-8.0, -4.0, 0.0]]))
    assert any("1 image(s) without a label file" in note for note in data.notes)


def test_local_layout_reads_id_mapping_from_a_json_file(tmp_path):
    config = _local(tmp_path, {"a": "1 1 1  2 2 1  0 0 10 10\n"}, id_mapping="keypoints.json")
    (tmp_path / "keypoints.json").write_text(json.dumps([{"name": "left"}, {"name": "right"}]))
    data = build_data(config, ("train",), task="pose_estimation")
    assert data.class_names == ["left", "right"]


@pytest.mark.parametrize(
    ("labels", "id_mapping", "change", "expected"),
    [
        ({"a": "1 1 1  2 2 1  0 0 10 10\n"}, ["x", "y", "z"], None, "a.txt:1: 10 values, expected 13"),
        ({"a": "1 1 1  0 0 10 10\n1 1 1  2 2 1  0 0 10 10\n"}, None, None, "a.txt:2: 10 values, expected 7"),
        ({"a": "1 1 one  0 0 10 10\n"}, None, None, "a.txt:1: expected numbers"),
        ({"a": "1 1 1  10 0 5 10\n"}, None, None, "a.txt:1: the box (10, 0, 5, 10) is empty"),
        ({"a": None}, None, None, "train split has no labelled person"),
        ({"a": "1 1 1  0 0 10 10\n"}, None, "no_labels", "data.path.train.label: folder not found"),
    ],
)
def test_bad_local_data_names_the_file(tmp_path, labels, id_mapping, change, expected):
    config = _local(tmp_path, labels, id_mapping=id_mapping)
    if change == "no_labels":
        config["path"]["train"]["label"] = "missing"
    with pytest.raises(DataError) as caught:
        build_data(config, ("train",), task="pose_estimation")
    assert expected in caught.value.message
    assert str(tmp_path) in caught.value.message


def test_a_corrupt_image_names_itself_when_training(tmp_path, capsys):
    config_dir = tmp_path / "data"
    _local(config_dir, {"a": "4 4 1  0 0 10 10\n", "b": "4 4 1  0 0 10 10\n", "c": "4 4 1  0 0 10 10\n"})
    (config_dir / "images/train/b.png").write_bytes(b"\x89PNG not really")
    spec = tmp_path / "pose.yaml"
    root = config_dir.as_posix()
    spec.write_text(
        SPEC + f"data:\n  path: {{root: {root}, train: {{image: images/train, label: labels/train}}}}\n"
        "  id_mapping: [point]\n"
    )
    code, _, err = run_cli(capsys, "train", spec, "--out", tmp_path / "run", "--no-tensorboard")
    assert code == 1 and "b.png: cannot decode image" in err


def test_a_corrupt_image_is_skipped_and_counted_with_on_bad_sample_skip(tmp_path):
    config = _local(tmp_path, {"a": "4 4 1  0 0 10 10\n4 5 1  0 0 10 10\n", "b": "4 4 1  0 0 10 10\n"})
    (tmp_path / "images/train/a.png").write_bytes(b"\x89PNG not really")
    config["on_bad_sample"] = "skip"
    data = build_data(config, ("train",), task="pose_estimation")
    assert len(data.splits["train"]) == 1  # both people of a.png are left out
    assert data.bad_samples.counts() == {"train": {"corrupt image": 2}}
    assert any("a.png: cannot decode image" in note for note in data.notes)


def test_an_input_size_other_than_the_heads_is_a_located_spec_error(tmp_path, capsys):
    spec = tmp_path / "pose.yaml"
    spec.write_text(SPEC + "data: {num_train: 8, input_size: [64, 48]}\n")
    code, _, err = run_cli(capsys, "train", spec, "--out", tmp_path / "run")
    assert code == 1 and "/data/input_size: is [64, 48], but the rtmcc head's target_size is [32, 24]" in err
    assert not (tmp_path / "run").exists()


def test_check_output_names_the_model_file_on_a_wrong_pose_output():
    check_output({"pred": torch.zeros(2, 7, 112)}, 7, 2, "model.py", "pose_estimation")
    with pytest.raises(RunError, match=r"model.py: forward\(\)\['pred'\] has shape \(2, 5, 112\); expected \(2, 7"):
        check_output({"pred": torch.zeros(2, 5, 112)}, 7, 2, "model.py", "pose_estimation")
    with pytest.raises(RunError, match="model.py: forward\\(\\) must return a dict with 'pred'"):
        check_output(torch.zeros(2, 7, 112), 7, 2, "model.py", "pose_estimation")


def _one_hot_simcc(keypoints: torch.Tensor, size=(32, 24), ratio=2.0) -> torch.Tensor:
    """SimCC logits peaking at ``keypoints`` (B, K, 2) in input pixels."""
    height, width = size
    batch, count = keypoints.shape[:2]
    pred = torch.full((batch, count, int((height + width) * ratio)), -5.0)
    for b in range(batch):
        for k in range(count):
            x, y = keypoints[b, k]
            pred[b, k, int(x * ratio)] = 5.0
            pred[b, k, int(width * ratio) + int(y * ratio)] = 5.0
    return pred


def test_decode_and_metrics_score_exact_and_distant_keypoints():
    truth = torch.tensor([[[3.0, 20.0, 1.0], [20.0, 4.0, 1.0], [10.0, 10.0, 0.0]]]).repeat(4, 1, 1)
    truth[:, :, :2] += torch.arange(4.0)[:, None, None]
    decoded, scores = decode_simcc(_one_hot_simcc(truth[..., :2]), (32, 24))
    assert torch.allclose(decoded, truth[..., :2]) and scores.shape == (4, 3)

    meters = pose_meters()
    for meter in meters.values():
        meter.update(decoded, scores, truth, (32, 24))
    assert float(meters["pck"].compute()) == 1.0 and float(meters["oks_ap"].compute()) == pytest.approx(1.0)

    far = decoded.clone()
    far[:, 0] += torch.tensor([10.0, 0.0])  # the first keypoint 10 px off: beyond 0.2 x 32 = 6.4 px
    meters = pose_meters()
    for meter in meters.values():
        meter.update(far, scores, truth, (32, 24))
    assert float(meters["pck"].compute()) == pytest.approx(0.5)  # only labelled keypoints count
    assert oks_ap(far, scores.mean(-1), truth, 32 * 24) < 1.0
    assert np.isfinite(float(meters["oks_ap"].compute()))
