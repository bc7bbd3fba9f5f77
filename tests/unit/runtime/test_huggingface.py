"""``data.format: huggingface`` with NetsPresso Trainer's keys (``metadata: {custom_cache_dir, repo, subset,
features: {image, label}}``), on tiny datasets built with the ``datasets`` library itself and saved to disk (no
network): classification and segmentation through ``npc train``, the class list, splits, bad rows and refusals.
"""

from __future__ import annotations

import csv
import sys

import numpy as np
import pytest
from ruamel.yaml import YAML

from npc.runtime.data import build_data
from npc.runtime.errors import DataError
from npc.spec import SpecError
from npc.spec.run_config import load_run_config, resolve_data
from tests.helpers import REPO, run_cli

datasets = pytest.importorskip("datasets", reason="the hf extra (pip install 'npc[hf]') is not installed")
Image = pytest.importorskip("PIL.Image")

ONE_EPOCH = "epochs: 1\nbatch_size: 4\nnum_workers: 0\noptimizer: {name: adamw, lr: 0.01}"
PEER_DATA = """\
data:
  name: tiny_beans
  task: classification
  format: huggingface
  metadata:
    custom_cache_dir: ./data/huggingface
    repo: {repo}
    subset: ~
    features:
      image: image
      label: labels
"""


def _images(count: int, size: int = 12) -> list:
    return [Image.new("RGB", (size, size), ((40 * i) % 256, 200 if i % 2 else 0, 30)) for i in range(count)]


def _classification_set(folder, *, count=12, labels=None, validation=True, feature=None, image="image",
                        label="labels"):  # fmt: skip
    """A DatasetDict (train, and validation unless told) with an image column and a ClassLabel ``labels``."""
    labels = labels if labels is not None else [i % 2 for i in range(count)]
    feature = feature if feature is not None else datasets.ClassLabel(names=["red", "green"])
    features = datasets.Features({image: datasets.Image(), label: feature})
    train = datasets.Dataset.from_dict({image: _images(count), label: labels}, features=features)
    splits = {"train": train}
    if validation:
        splits["validation"] = train.select(range(4))
    datasets.DatasetDict(splits).save_to_disk(str(folder))
    return folder


def _segmentation_set(folder, count=8, size=16, image="pixel_values", label="label"):
    """Images and grey masks (0 background, 1 a square, 2 a bar) in one ``pixel_values``/``label`` table."""
    images, masks = [], []
    for i in range(count):
        mask = np.zeros((size, size), dtype=np.uint8)
        mask[2 + i % 3 : 9, 2:9] = 1
        mask[12:14, :] = 2
        picture = np.stack([mask * 100, mask * 50, np.full_like(mask, 20)], axis=-1).astype(np.uint8)
        images.append(Image.fromarray(picture, "RGB"))
        masks.append(Image.fromarray(mask, "L"))
    features = datasets.Features({image: datasets.Image(), label: datasets.Image()})
    table = datasets.Dataset.from_dict({image: images, label: masks}, features=features)
    datasets.DatasetDict({"train": table, "validation": table.select(range(3))}).save_to_disk(str(folder))
    return folder


def _data(repo, **extra) -> dict:
    metadata = {"repo": str(repo), "subset": None, "features": {"image": "image", "label": "labels"}}
    return resolve_data({"format": "huggingface", "metadata": metadata, "image_size": 16, **extra})


# --- classification ----------------------------------------------------------------------------------------------


def test_the_peers_data_file_trains_one_epoch_from_a_saved_folder(capsys, tmp_path, write_spec, tiny_model_py,
                                                                  monkeypatch):  # fmt: skip
    monkeypatch.chdir(tmp_path)  # `repo: tiny_beans` is a folder here, as load_dataset reads a local path
    _classification_set(tmp_path / "tiny_beans")
    data = tmp_path / "data.yaml"
    data.write_text(PEER_DATA.format(repo="tiny_beans"))
    spec = write_spec(ONE_EPOCH + "\n", None)
    argv = ("train", spec, "--data", data, "--model-py", tiny_model_py, "--out", tmp_path / "run", "--no-tensorboard")
    code, out, err = run_cli(capsys, *argv)
    assert code == 0, err
    assert "tiny_beans (huggingface tiny_beans, 2 classes; train 12, valid 4)" in out
    with (tmp_path / "run" / "metrics.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["valid_top1"] != ""
    resolved = YAML(typ="safe").load((tmp_path / "run" / "resolved.yaml").read_text())
    assert resolved["data"]["metadata"]["repo"] == str(tmp_path / "tiny_beans")  # absolute: evaluate from anywhere
    monkeypatch.chdir(tmp_path / "run")
    code, out, err = run_cli(capsys, "evaluate", tmp_path / "run")
    assert code == 0 and "valid (4 samples)" in out, err


def test_classlabel_names_are_the_classes_and_rows_read_as_images(tmp_path):
    bundle = build_data(_data(_classification_set(tmp_path / "set")), ("train", "valid"))
    assert (bundle.num_classes, bundle.class_names) == (2, ["red", "green"])
    image, label = bundle.splits["train"][1]
    assert tuple(image.shape) == (3, 16, 16) and label == 1
    assert len(bundle.splits["valid"]) == 4


def test_without_a_validation_split_a_fixed_part_of_train_is_held_out(tmp_path):
    repo = _classification_set(tmp_path / "set", validation=False)
    first = build_data(_data(repo), ("train", "valid"))
    again = build_data(_data(repo), ("train", "valid"))
    assert (len(first.splits["train"]), len(first.splits["valid"])) == (10, 2)
    assert first.splits["valid"].indices == again.splits["valid"].indices
    assert any("holding out 2 of 12" in note for note in first.notes)


def test_string_labels_are_sorted_and_integer_labels_take_id_mapping_names(tmp_path):
    words = ["cat", "ant", "bee"] * 4
    repo = _classification_set(tmp_path / "words", labels=words, feature=datasets.Value("string"))
    bundle = build_data(_data(repo), ("train",))
    assert bundle.class_names == ["ant", "bee", "cat"] and bundle.splits["train"][0][1] == 2
    numbers = _classification_set(tmp_path / "ints", labels=[i % 3 for i in range(12)], feature=datasets.Value("int64"))
    assert build_data(_data(numbers), ("train",)).class_names == ["0", "1", "2"]
    named = build_data(_data(numbers, id_mapping=["x", "y", "z"]), ("train",))
    assert named.class_names == ["x", "y", "z"]


def test_a_folder_of_data_files_is_read_with_load_dataset(tmp_path):
    features = datasets.Features({"image": datasets.Image(), "labels": datasets.ClassLabel(names=["a", "b"])})
    table = datasets.Dataset.from_dict({"image": _images(6), "labels": [0, 1] * 3}, features=features)
    (tmp_path / "files" / "data").mkdir(parents=True)
    table.to_parquet(str(tmp_path / "files" / "data" / "train-00000-of-00001.parquet"))
    config = _data(tmp_path / "files")
    config["metadata"]["custom_cache_dir"] = str(tmp_path / "cache")
    bundle = build_data(config, ("train",))
    assert bundle.class_names == ["a", "b"] and len(bundle.splits["train"]) == 6


def test_a_label_outside_the_classes_names_its_row_or_is_skipped(tmp_path):
    repo = _classification_set(tmp_path / "set", labels=[0, 1, -1, 1] * 3)  # ClassLabel's "no label"
    with pytest.raises(DataError, match=r"set\[train\]\[2\]: class -1 is not one of the 2 classes \(red, green\)"):
        build_data(_data(repo), ("train", "valid"))
    bundle = build_data(_data(repo, on_bad_sample="skip"), ("train", "valid"))
    assert len(bundle.splits["train"]) == 9 and bundle.bad_samples.counts()["train"] == {"unknown class": 3}


def test_an_image_that_does_not_decode_names_its_row_and_is_dropped_under_skip(capsys, tmp_path, write_spec,
                                                                              tiny_model_py):  # fmt: skip
    features = datasets.Features({"image": datasets.Image(), "labels": datasets.ClassLabel(names=["a", "b"])})
    cells = [*_images(7), {"bytes": b"not an image", "path": None}]
    table = datasets.Dataset.from_dict({"image": cells, "labels": [0, 1] * 4}, features=features)
    datasets.DatasetDict({"train": table, "validation": table.select(range(4))}).save_to_disk(str(tmp_path / "set"))
    data = tmp_path / "data.yaml"
    data.write_text(PEER_DATA.format(repo=tmp_path / "set"))
    spec = write_spec(ONE_EPOCH.replace("batch_size: 4", "batch_size: 8") + "\n", None)
    argv = ("train", spec, "--data", data, "--model-py", tiny_model_py, "--out", tmp_path / "run", "--no-tensorboard")
    code, _, err = run_cli(capsys, *argv)
    assert code == 1 and f"{tmp_path / 'set'}[train][7]: cannot decode image" in err
    code, out, err = run_cli(capsys, *argv, "--on-bad-sample", "skip")
    assert code == 0, err
    assert "[train][7]" in (tmp_path / "run" / "bad_samples.json").read_text()


def test_missing_columns_splits_and_folders_are_named(tmp_path):
    repo = _classification_set(tmp_path / "set")
    config = _data(repo)
    config["metadata"]["features"]["label"] = "fine_label"
    with pytest.raises(DataError, match=r"data.metadata.features.label: .* has no column 'fine_label' \(train: "):
        build_data(config, ("train",))
    with pytest.raises(DataError, match="has no 'test' split"):
        build_data(_data(repo), ("test",))
    with pytest.raises(DataError, match="data.metadata.repo: folder not found") as info:
        build_data(_data("./no-such-folder"), ("train",))
    assert info.value.problem.name == "UNUSABLE"


# --- segmentation ------------------------------------------------------------------------------------------------

SEGMENTATION_SPEC = """\
model:
  task: segmentation
  name: tiny_segmentation
  architecture:
    backbone:
      name: resnet
      params: {{block_type: basicblock, norm_type: batch_norm, return_stage_idx: [0, 1]}}
      stage_params:
        - {{channels: 8, num_blocks: 1}}
        - {{channels: 8, num_blocks: 1}}
    head:
      name: all_mlp_decoder
      params: {{intermediate_channels: 8, classifier_dropout_prob: 0.0}}
  losses:
    - {{criterion: seg_cross_entropy, ignore_index: 255}}
training: {{epochs: 1, batch_size: 4, num_workers: 0}}
data:
  name: tiny_sidewalk
  task: segmentation
  format: huggingface
  image_size: 32
  metadata:
    custom_cache_dir: ~
    repo: {repo}
    subset: ~
    features: {{image: pixel_values, label: label}}
  label_image_mode: L
  id_mapping: [background, square, bar]
"""


def test_segmentation_masks_train_one_epoch(capsys, tmp_path):
    spec = tmp_path / "seg.yaml"
    spec.write_text(SEGMENTATION_SPEC.format(repo=_segmentation_set(tmp_path / "sidewalk")))
    code, out, err = run_cli(capsys, "train", spec, "--out", tmp_path / "run", "--no-tensorboard")
    assert code == 0, err
    assert "masks L, 3 classes; train 8, valid 3" in out
    with (tmp_path / "run" / "metrics.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["valid_miou"] != ""


def test_segmentation_masks_map_through_id_mapping_and_unknown_values_are_named(tmp_path):
    repo = _segmentation_set(tmp_path / "set")
    config = load_run_config(_written(tmp_path, SEGMENTATION_SPEC.format(repo=repo))).data
    bundle = build_data(config, ("train",), task="segmentation")
    image, mask = bundle.splits["train"][0]
    assert tuple(mask.shape) == (32, 32) and set(mask.unique().tolist()) == {0, 1, 2}
    config["id_mapping"] = ["background", "square"]  # grey value 2 is listed no more
    with pytest.raises(DataError, match=r"set\[train\]\[0\]: mask value\(s\) \[2\] are not in id_mapping"):
        build_data(config, ("train",), task="segmentation")


def test_the_peers_template_id_mapping_under_metadata_is_read(tmp_path):
    text = SEGMENTATION_SPEC.format(repo=_segmentation_set(tmp_path / "set")).replace(
        "  id_mapping: [background, square, bar]\n", ""
    ).replace("features: {image: pixel_values, label: label}", "features: {image: pixel_values, label: label}\n"
              "    id_mapping: [background, square, bar]")  # fmt: skip
    config = load_run_config(_written(tmp_path, text)).data
    assert config["id_mapping"] == ["background", "square", "bar"] and "id_mapping" not in config["metadata"]


# --- refusals ----------------------------------------------------------------------------------------------------


def _written(tmp_path, text, name="spec.yaml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("change", "pointer", "message"),
    [
        (("task: segmentation\n  format", "task: detection\n  format"), "/data/task",
         "the data is for detection, but model.task is segmentation"),
        (("  id_mapping: [background, square, bar]\n", ""), "/data/format", "segmentation needs id_mapping"),
        (("    features: {image: pixel_values, label: label}\n", ""), "/data/metadata",
         "missing required key 'features'"),
        (("  label_image_mode: L\n", "  path: {root: /data}\n"), "/data/path", "is for the local layouts"),
        (("format: huggingface", "format: local"), "/data/metadata", "is read with format: huggingface only"),
    ],
)  # fmt: skip
def test_what_huggingface_cannot_do_is_located_in_the_data_file(tmp_path, change, pointer, message):
    text = SEGMENTATION_SPEC.format(repo=tmp_path).replace(*change)
    with pytest.raises(SpecError) as info:
        load_run_config(_written(tmp_path, text))
    found = [(d.pointer, d.message) for d in info.value.diagnostics]
    assert any(p == pointer and message in m for p, m in found), found


def test_detection_from_huggingface_is_refused_as_the_peer_has_no_reader(tmp_path):
    text = SEGMENTATION_SPEC.format(repo=tmp_path).replace("task: segmentation", "task: detection")
    with pytest.raises(SpecError) as info:
        load_run_config(_written(tmp_path, text))
    (diagnostic,) = [d for d in info.value.diagnostics if d.pointer == "/data/format"]
    assert "read for classification and segmentation" in diagnostic.message and diagnostic.line is not None


def test_without_the_datasets_library_train_names_the_hf_extra(capsys, tmp_path, write_spec, tiny_model_py,
                                                                monkeypatch):  # fmt: skip
    data = tmp_path / "data.yaml"
    data.write_text(PEER_DATA.format(repo=_classification_set(tmp_path / "set")))
    monkeypatch.setitem(sys.modules, "datasets", None)  # `import datasets` now fails as if not installed
    spec = write_spec(ONE_EPOCH + "\n", None)
    code, _, err = run_cli(capsys, "train", spec, "--data", data, "--model-py", tiny_model_py, "--out", tmp_path / "r")
    assert code == 2
    assert "needs the hf extra (no module named 'datasets'): pip install 'npc[hf]'" in err


# --- the peer's own files (extra check: skipped without ../shared/peer) ----------------------------------------------

PEER = REPO.parent / "shared" / "peer" / "configs" / "data"
PEER_HF_FILES = sorted([*PEER.glob("huggingface/*.yaml"), *PEER.glob("template/*_huggingface.yaml")])


@pytest.mark.skipif(not PEER.is_dir(), reason=f"the peer's published configs are not at {PEER}")
@pytest.mark.parametrize("peer_file", PEER_HF_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_the_peers_huggingface_data_files_read_unchanged(tmp_path, monkeypatch, write_spec, peer_file):
    """Each file as published, its ``repo`` a saved dataset of that name in the current folder (no network)."""
    section = YAML(typ="safe").load(peer_file.read_text())["data"]
    metadata, task = section["metadata"], section["task"]
    columns = {"image": metadata["features"]["image"], "label": metadata["features"]["label"]}
    monkeypatch.chdir(tmp_path)
    if task == "segmentation":
        _segmentation_set(tmp_path / metadata["repo"], **columns)
        model = _written(tmp_path, SEGMENTATION_SPEC.format(repo="-").split("training:")[0], "model.yaml")
    else:
        _classification_set(tmp_path / metadata["repo"], **columns)
        model = write_spec(name="model.yaml")
    config = load_run_config(model, data_path=peer_file)
    assert config.data["format"] == "huggingface"
    bundle = build_data(config.data, ("train", "valid"), task=task)
    assert len(bundle.splits["train"]) and len(bundle.splits["valid"])
    image, _ = bundle.splits["valid"][0]
    assert tuple(image.shape) == (3, 224, 224)  # no augmentation file: data.image_size's default
