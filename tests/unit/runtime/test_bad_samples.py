"""Bad samples per task and kind under both policies: ``error`` names the file, ``skip`` leaves it out and counts it;
a split left empty is an error; the run summary, ``bad_samples.json`` and the CLI exit codes show what happened."""

import json

import numpy as np
import pytest
import torch

from helpers import run_cli
from npc.cli.exits import exit_code_for
from npc.cli.run_commands import _skipped_rows
from npc.runtime.data import BadSamples, build_data
from npc.runtime.errors import DataError
from npc.spec.run_config import resolve_data

CORRUPT = b"\x89PNG\r\n\x1a\n not really a png"


def _png(path, size=(8, 8), colour=(90, 20, 20), mode="RGB"):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size, colour).save(path)


def _both(config, task, bad_message, exit_code=1):
    """build_data under ``error`` (must raise ``bad_message``) and under ``skip`` (returned)."""
    with pytest.raises(DataError, match=bad_message) as info:
        build_data({**config, "on_bad_sample": "error"}, ("train",), task=task)
    assert exit_code_for(info.value) == exit_code
    return build_data({**config, "on_bad_sample": "skip"}, ("train",), task=task)


def _skipped(data, split="train"):
    return data.bad_samples.counts().get(split, {})


# --- classification ------------------------------------------------------------------------------------------------


def _csv_set(root, rows):
    """A local-layout set: images a.png, b.png, c.png and the CSV ``rows`` (image_id, class)."""
    for name in ("a", "b", "c"):
        _png(root / "img" / f"{name}.png")
    (root / "train.csv").write_text("image_id,class\n" + "".join(f"{i},{c}\n" for i, c in rows))
    path = {"root": str(root), "train": {"image": "img", "label": "train.csv"}}
    return resolve_data({"path": path, "image_size": 8, "id_mapping": ["cat", "dog"]})


@pytest.mark.parametrize(
    ("rows", "corrupt", "message", "reason", "exit_code"),
    [
        ([("a.png", "cat"), ("b.png", "emu")], False, r"train.csv:3: class 'emu' is not one of", "unknown class", 1),
        ([("a.png", "cat"), ("x.png", "dog")], False, r"train.csv:3: image not found: .*x.png", "missing image", 2),
        ([("a.png", "cat"), ("b.png", "dog")], True, r"b.png: cannot decode image", "corrupt image", 1),
    ],
)
def test_classification_csv(tmp_path, rows, corrupt, message, reason, exit_code):
    config = _csv_set(tmp_path, [*rows, ("c.png", "dog")])
    if corrupt:
        (tmp_path / "img" / "b.png").write_bytes(CORRUPT)
    data = _both(config, "classification", message, exit_code)
    assert len(data.splits["train"]) == 2 and [data.splits["train"][i][1] for i in range(2)] == [0, 1]
    assert _skipped(data) == {reason: 1}
    assert any(note.startswith("skipped 1 bad train sample(s)") for note in data.notes)
    assert any(f"skipped {tmp_path}" in note and ("b.png" in note or "train.csv:3" in note) for note in data.notes)


def test_image_folder_skips_a_corrupt_file_and_an_unknown_class_folder(tmp_path):
    for name in ("ant", "bee"):
        for i in range(2):
            _png(tmp_path / "train" / name / f"{i}.png")
            _png(tmp_path / "valid" / name / f"{i}.png")
    _png(tmp_path / "valid" / "wasp" / "0.png")
    (tmp_path / "train" / "bee" / "1.png").write_bytes(b"")
    config = resolve_data({"path": {"root": str(tmp_path), "train": {"image": "train"}, "valid": {"image": "valid"}}})
    with pytest.raises(DataError, match=r"train/bee/1.png: cannot decode image"):
        build_data(config)
    data = build_data({**config, "on_bad_sample": "skip"})
    assert len(data.splits["train"]) == 3 and len(data.splits["valid"]) == 4
    assert data.bad_samples.counts() == {"train": {"corrupt image": 1}, "valid": {"unknown class": 1}}


def test_a_truncated_jpeg_is_corrupt(tmp_path):
    from PIL import Image

    config = _csv_set(tmp_path, [("a.png", "cat"), ("b.jpg", "dog"), ("c.png", "dog")])
    noise = np.random.RandomState(0).randint(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(tmp_path / "img" / "b.jpg", quality=90)
    whole = (tmp_path / "img" / "b.jpg").read_bytes()
    (tmp_path / "img" / "b.jpg").write_bytes(whole[: len(whole) // 2])  # a copy cut off half-way: verify() passes
    data = _both(config, "classification", r"b.jpg: cannot decode image \(image file is truncated")
    assert _skipped(data) == {"corrupt image": 1}


# --- segmentation --------------------------------------------------------------------------------------------------


def _seg_set(root, bad=None):
    """Three grey-mask pairs s0..s2 (8x8); ``bad`` breaks s1: 'size', 'values', 'image', 'mask', 'mode', 'missing'."""
    from PIL import Image

    for i in range(3):
        _png(root / "img" / f"s{i}.png")
        mask = np.zeros((8, 8), dtype=np.uint8)
        mask[:4] = 1
        mask[0, 0] = 255
        size, mode = (8, 8), "L"
        if i == 1 and bad == "size":
            mask = np.zeros((6, 8), dtype=np.uint8)  # height 6: the image is 8x8
        if i == 1 and bad == "values":
            mask[5, 5] = 9
        (root / "mask").mkdir(parents=True, exist_ok=True)
        target = root / "mask" / f"s{i}.png"
        if i == 1 and bad == "mode":
            Image.new("RGB", size, (1, 0, 0)).save(target)
        else:
            Image.fromarray(mask, mode).save(target)
    if bad == "image":
        (root / "img" / "s1.png").write_bytes(CORRUPT)
    if bad == "mask":
        (root / "mask" / "s1.png").write_bytes(b"\x00" * 10)
    if bad == "missing":
        (root / "mask" / "s1.png").unlink()
    path = {"root": str(root), "train": {"image": "img", "label": "mask"}}
    return resolve_data({"path": path, "image_size": 8, "id_mapping": ["bg", "road"]}, task="segmentation")


@pytest.mark.parametrize(
    ("bad", "message", "reason", "exit_code"),
    [
        ("size", r"mask/s1.png: mask is 8x6 pixels, its image is 8x8 .*does not resize", "mask size", 1),
        ("values", r"mask/s1.png: mask value\(s\) \[9\] are not in id_mapping", "mask values", 1),
        ("image", r"img/s1.png: cannot decode image", "corrupt image", 1),
        ("mask", r"mask/s1.png: cannot decode image", "corrupt mask", 1),
        ("mode", r"mask/s1.png: mask has RGB pixels", "mask mode", 1),
        ("missing", r"img/s1.png: no mask with the same name", "missing mask", 2),
    ],
)
def test_segmentation(tmp_path, bad, message, reason, exit_code):
    data = _both(_seg_set(tmp_path, bad), "segmentation", message, exit_code)
    assert len(data.splits["train"]) == 2 and _skipped(data) == {reason: 1}
    image, mask = data.splits["train"][1]  # s2: the sample after the skipped one is intact
    assert image.shape == (3, 8, 8) and mask[0, 0] == 255 and mask[1, 0] == 1 and mask[7, 7] == 0


def test_good_segmentation_data_reports_nothing(tmp_path):
    data = build_data(_seg_set(tmp_path), ("train",), task="segmentation")
    assert len(data.splits["train"]) == 3 and not data.bad_samples.any()
    assert data.bad_samples.summary()["splits"]["train"] == {"kept": 3, "skipped": {}, "repaired": {}}


# --- detection: YOLO -------------------------------------------------------------------------------------------------


def _yolo_set(root, second_label, *, corrupt=False, id_mapping=("cat", "dog")):
    for stem, text in (("a", "0 0.5 0.5 0.4 0.4\n"), ("b", second_label), ("c", "1 0.25 0.25 0.2 0.2\n")):
        _png(root / "img" / f"{stem}.png", size=(20, 10))
        (root / "lab").mkdir(parents=True, exist_ok=True)
        (root / "lab" / f"{stem}.txt").write_text(text)
    if corrupt:
        (root / "img" / "b.png").write_bytes(CORRUPT)
    path = {"root": str(root), "train": {"image": "img", "label": "lab"}}
    mapping = list(id_mapping) if id_mapping else None
    return resolve_data({"path": path, "image_size": 10, "id_mapping": mapping}, task="detection")


@pytest.mark.parametrize(
    ("label", "corrupt", "message", "reason"),
    [
        ("0 0.5 0.5 0.2 0.2\n0 1.5 0.5 0.2 0.2\n", False, r"b.txt:2: box 1.5 .* wholly outside", "box outside image"),
        ("0 0.5 0.5 0 0.2\n", False, r"b.txt:1: box 0.5 0.5 0 0.2 has no area", "degenerate box"),
        ("0 0.5 0.5 0.2 0.2\n2 0.5 0.5 0.2 0.2\n", False, r"b.txt:2: class 2 is not one of the 2", "unknown class"),
        ("0 0.5 0.5 0.2\n", False, r"b.txt:1: expected 'class cx cy w h'", "bad label line"),
        ("0 0.5 nan 0.2 0.2\n", False, r"b.txt:1: box .* is not four finite numbers", "bad label line"),
        ("0 0.5 0.5 0.2 0.2\n", True, r"img/b.png: cannot decode image", "corrupt image"),
    ],
)  # fmt: skip
def test_yolo(tmp_path, label, corrupt, message, reason):
    data = _both(_yolo_set(tmp_path, label, corrupt=corrupt), "detection", message)
    assert len(data.splits["train"]) == 2 and _skipped(data) == {reason: 1}
    _, target = data.splits["train"][1]
    assert target["labels"].tolist() == [1]  # c.txt's box, not b's


def test_yolo_box_partly_outside_is_clipped_and_counted(tmp_path):
    config = _yolo_set(tmp_path, "0 0.9 0.5 0.4 0.2\n0 0.5 0.5 0.2 0.2\n")  # x from 0.7 to 1.1
    data = build_data(config, ("train",), task="detection")  # the default policy: a clipped box is no error
    _, target = data.splits["train"][1]
    assert torch.allclose(target["boxes"][0], torch.tensor([7.0, 4.0, 10.0, 6.0]))
    assert data.bad_samples.summary()["splits"]["train"]["repaired"] == {
        "box(es) partly outside their image clipped to it": 1
    }
    assert "train: 1 box(es) partly outside their image clipped to it" in data.notes


def test_yolo_without_id_mapping_only_refuses_negative_classes(tmp_path):
    data = _both(_yolo_set(tmp_path, "-1 0.5 0.5 0.2 0.2\n", id_mapping=None), "detection", r"b.txt:1: class -1")
    assert data.class_names == ["0", "1"] and _skipped(data) == {"unknown class": 1}


# --- detection: COCO -------------------------------------------------------------------------------------------------


def _coco_set(root, annotation, *, height=10):
    for name in ("x", "y"):
        _png(root / "img" / f"{name}.png", size=(20, 10))
    document = {
        "images": [
            {"id": 1, "file_name": "x.png", "width": 20, "height": height},
            {"id": 2, "file_name": "y.png", "width": 20, "height": 10},
        ],
        "annotations": [
            {"id": 1, "image_id": 1, "category_id": 3, "bbox": [2, 1, 10, 4], **annotation},
            {"id": 2, "image_id": 2, "category_id": 3, "bbox": [0, 0, 5, 5]},
        ],
        "categories": [{"id": 3, "name": "car"}],
    }
    (root / "train.json").write_text(json.dumps(document))
    path = {"root": str(root), "train": {"image": "img", "label": "train.json"}}
    return resolve_data({"format": "coco", "path": path, "image_size": 10}, task="detection")


@pytest.mark.parametrize(
    ("annotation", "height", "message", "reason"),
    [
        ({"category_id": 9}, 10, r"annotations\[0\]: category_id 9 is not in 'categories'", "unknown class"),
        ({"bbox": [25, 1, 4, 4]}, 10, r"annotations\[0\]: box 25 1 4 4 .* lies wholly outside", "box outside image"),
        ({}, 12, r"train.json: images\[0\]: says 20x12 pixels, but .*x.png is 20x10", "image size"),
    ],
)  # fmt: skip
def test_coco(tmp_path, annotation, height, message, reason):
    data = _both(_coco_set(tmp_path, annotation, height=height), "detection", message)
    assert len(data.splits["train"]) == 1 and _skipped(data) == {reason: 1}


def test_coco_drops_boxes_without_area_and_clips_the_rest(tmp_path):
    data = build_data(_coco_set(tmp_path, {"bbox": [15, 1, 10, 0]}), ("train",), task="detection")
    assert [len(data.splits["train"][i][1]["labels"]) for i in range(2)] == [0, 1]
    assert data.bad_samples.summary()["splits"]["train"]["repaired"] == {"COCO box(es) without area dropped": 1}
    data = build_data(_coco_set(tmp_path / "b", {"bbox": [15, 1, 10, 4]}), ("train",), task="detection")
    assert torch.allclose(data.splits["train"][0][1]["boxes"], torch.tensor([[7.5, 1.0, 10.0, 5.0]]))
    assert "train: 1 box(es) partly outside their image clipped to it" in data.notes


# --- the policy itself -------------------------------------------------------------------------------------------


def test_a_split_with_only_bad_samples_is_an_error(tmp_path):
    for name in ("a", "b", "c"):
        _png(tmp_path / "img" / f"{name}.png")
        (tmp_path / "img" / f"{name}.png").write_bytes(CORRUPT)
    (tmp_path / "train.csv").write_text("image_id,class\na.png,cat\nb.png,cat\nc.png,dog\nd.png,dog\n")
    path = {"root": str(tmp_path), "train": {"image": "img", "label": "train.csv"}}
    config = resolve_data({"path": path, "id_mapping": ["cat", "dog"], "on_bad_sample": "skip"})
    with pytest.raises(DataError) as info:
        build_data(config, ("train",))
    assert exit_code_for(info.value) == 1
    assert info.value.message == (
        f"{tmp_path / 'train.csv'}: every sample of the train split is bad (3 corrupt image, 1 missing image); "
        "none is left to use"
    )


def test_the_warning_lists_ten_files_then_counts_the_rest(tmp_path):
    rows = [("a.png", "cat")] + [(f"gone{i}.png", "dog") for i in range(13)]
    data = build_data({**_csv_set(tmp_path, rows), "on_bad_sample": "skip"}, ("train",))
    assert data.notes[0] == "skipped 13 bad train sample(s) (13 missing image; --on-bad-sample skip)"
    assert sum(note.startswith("skipped ") and "image not found" in note for note in data.notes) == 10
    assert data.notes[11] == "... and 3 more skipped sample(s)"
    assert len(data.bad_samples.summary()["skipped"]) == 13  # bad_samples.json lists every one


def test_an_unknown_policy_is_refused(tmp_path):
    with pytest.raises(DataError, match=r"data.on_bad_sample: 'ignore' is not one of: error, skip"):
        BadSamples.from_config({"on_bad_sample": "ignore"})


# --- the CLI: exit codes, the summary and the run folder ---------------------------------------------------------


@pytest.fixture
def folder_spec(tmp_path, write_spec):
    """A spec training the tiny model on class folders whose train split holds one corrupt image."""
    for name in ("ant", "bee"):
        for i in range(3):
            _png(tmp_path / "data" / name / f"{i}.png", colour=(40 + 60 * i, 10, 200 if name == "bee" else 0))
    (tmp_path / "data" / "bee" / "2.png").write_bytes(CORRUPT)
    training = "epochs: 1\nbatch_size: 8\noptimizer: {name: adamw, lr: 0.01}\nnum_workers: 0"
    return write_spec(training, f"path: {{root: {tmp_path / 'data'}, train: {{image: .}}}}\nimage_size: 8")


def test_train_stops_on_the_first_bad_sample_by_default(capsys, tmp_path, folder_spec, tiny_model_py):
    run = tmp_path / "run"
    code, _, err = run_cli(capsys, "train", folder_spec, "--model-py", tiny_model_py, "--out", run, "--no-tensorboard")
    assert code == 1
    assert err.strip() == f"npc train: error: {tmp_path / 'data' / 'bee' / '2.png'}: cannot decode image " + (
        "(not an image format Pillow reads)"
    )
    assert not run.exists()  # checked before the run folder is written
    run.mkdir()
    (run / "metrics.csv").write_text("epoch\n1\n")  # an earlier run that --out would replace
    code, _, err = run_cli(capsys, "train", folder_spec, "--model-py", tiny_model_py, "--out", run, "--no-tensorboard")
    assert code == 1 and "bee/2.png: cannot decode image" in err
    assert (run / "metrics.csv").read_text() == "epoch\n1\n"  # bad data does not cost it its files


def test_train_skips_counts_and_records_bad_samples(capsys, tmp_path, folder_spec, tiny_model_py):
    run = tmp_path / "run"
    argv = ("train", folder_spec, "--model-py", tiny_model_py, "--out", run, "--no-tensorboard")
    code, out, _ = run_cli(capsys, *argv, "--on-bad-sample", "skip")
    assert code == 0
    assert "skipped 1 bad train sample(s) (1 corrupt image; --on-bad-sample skip)" in out
    assert f"skipped {tmp_path / 'data' / 'bee' / '2.png'}: cannot decode image" in out
    assert "bad samples (on_bad_sample: skip)" in out and "1 corrupt image" in out.split("bad samples")[-1]
    record = json.loads((run / "bad_samples.json").read_text())
    assert record["policy"] == "skip" and record["splits"]["train"]["skipped"] == {"corrupt image": 1}
    assert record["skipped"][0]["path"] == str(tmp_path / "data" / "bee" / "2.png")
    assert "on_bad_sample: skip" in (run / "resolved.yaml").read_text()

    code, out, _ = run_cli(capsys, "evaluate", run, "--split", "train", "--format", "json")  # the policy is recorded
    assert code == 0 and json.loads(out)["bad_samples"]["splits"]["train"]["skipped"] == {"corrupt image": 1}
    code, _, err = run_cli(capsys, "evaluate", run, "--split", "train", "--on-bad-sample", "error")
    assert code == 1 and "bee/2.png: cannot decode image" in err


def test_evaluate_shows_a_skipped_row_for_its_split_only():
    bad = {"splits": {"train": {"skipped": {"corrupt image": 2, "mask size": 1}}, "valid": {"skipped": {}}}}
    assert _skipped_rows(bad, "train") == [("skipped", "3 bad sample(s) (2 corrupt image, 1 mask size)")]
    assert _skipped_rows(bad, "valid") == [] and _skipped_rows(None, "train") == []
