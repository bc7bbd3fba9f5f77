"""Data: digits, the local CSV layout, the image-folder layout, and errors that name the offending path."""

import pytest
import torch

from npc.cli.exits import exit_code_for
from npc.runtime.data import build_data
from npc.runtime.errors import DataError
from npc.spec.run_config import resolve_data


def _local(tmp_path, make_images, *, rows=None, valid_rows=None, id_mapping=None, count=4):
    make_images(tmp_path / "images" / "train", count)
    make_images(tmp_path / "images" / "valid", 2)
    labels = tmp_path / "labels"
    labels.mkdir(exist_ok=True)
    rows = rows if rows is not None else [f"img_{i}.png,{i % 2}" for i in range(count)]
    (labels / "train.csv").write_text("image_id,class\n" + "\n".join(rows) + "\n")
    valid_rows = valid_rows if valid_rows is not None else ["img_0.png,1", "img_1.png,0"]
    (labels / "valid.csv").write_text("image_id,class\n" + "\n".join(valid_rows) + "\n")
    config = {
        "path": {
            "root": str(tmp_path),
            "train": {"image": "images/train", "label": "labels/train.csv"},
            "valid": {"image": "images/valid", "label": "labels/valid.csv"},
        },
        "image_size": 16,
    }
    if id_mapping is not None:
        config["id_mapping"] = id_mapping
    return resolve_data(config)


def test_digits_is_deterministic_and_stratified():
    data = build_data(resolve_data(None))
    again = build_data(resolve_data(None))
    train, valid = data.splits["train"], data.splits["valid"]
    assert (len(train), len(valid), data.num_classes) == (1437, 360, 10)
    assert train.tensors[0].shape == (1437, 3, 32, 32)
    assert torch.equal(valid.tensors[1], again.splits["valid"].tensors[1])
    assert torch.bincount(valid.tensors[1]).min() >= 35  # every digit in the valid split
    assert data.preprocess.kind == "digits" and data.in_memory


def test_local_csv_layout(tmp_path, make_images):
    config = _local(tmp_path, make_images, id_mapping=["cat", "dog"])
    data = build_data(config)
    assert data.num_classes == 2 and data.class_names == ["cat", "dog"]
    image, label = data.splits["train"][1]
    assert image.shape == (3, 16, 16) and label == 1
    assert [data.splits["valid"][i][1] for i in range(2)] == [1, 0]


def test_local_csv_with_class_names_and_a_dict_mapping(tmp_path, make_images):
    config = _local(
        tmp_path,
        make_images,
        rows=["img_0.png,c", "img_1.png,d", "img_2.png,c", "img_3.png,d"],
        valid_rows=["img_0.png,d", "img_1.png,c"],
        id_mapping={"c": "cat", "d": "dog"},
    )
    data = build_data(config)
    assert data.class_names == ["cat", "dog"]
    assert [data.splits["train"][i][1] for i in range(4)] == [0, 1, 0, 1]


def test_label_out_of_range_names_the_csv_line(tmp_path, make_images):
    config = _local(
        tmp_path, make_images, rows=["img_0.png,0", "img_1.png,1", "img_2.png,7", "img_3.png,0"], id_mapping=["a", "b"]
    )
    with pytest.raises(DataError) as info:
        build_data(config)
    assert info.value.message == f"{tmp_path / 'labels' / 'train.csv'}:4: class '7' is not one of the 2 classes (a, b)"
    assert exit_code_for(info.value) == 1


def test_missing_image_and_folder_are_exit_2(tmp_path, make_images):
    config = _local(tmp_path, make_images, rows=["img_0.png,0", "img_9.png,1"])
    with pytest.raises(DataError, match=r"train.csv:3: image not found: .*images/train/img_9.png") as info:
        build_data(config)
    assert exit_code_for(info.value) == 2
    config["path"]["train"]["image"] = "nowhere"
    with pytest.raises(DataError, match=r"data.path.train.image: folder not found: .*nowhere") as info:
        build_data(config)
    assert exit_code_for(info.value) == 2
    config["path"]["root"] = str(tmp_path / "no-root")
    with pytest.raises(DataError, match="data.path.root: folder not found"):
        build_data(config)


def test_bad_csv_header_and_empty_csv(tmp_path, make_images):
    config = _local(tmp_path, make_images)
    (tmp_path / "labels" / "train.csv").write_text("file,label\na,1\n")
    with pytest.raises(DataError, match=r"train.csv:1: expected the columns 'image_id' and 'class', got file, label"):
        build_data(config)
    (tmp_path / "labels" / "train.csv").write_text("image_id,class\n")
    with pytest.raises(DataError, match="train.csv: label file has no rows"):
        build_data(config)


def test_corrupt_image_names_the_file(tmp_path, make_images):
    config = _local(tmp_path, make_images)
    (tmp_path / "images" / "train" / "img_2.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    with pytest.raises(DataError, match=r"images/train/img_2.png: cannot decode image"):
        build_data(config)  # every image's header is checked when the data is built


def _folders(tmp_path, make_images, classes=("ant", "bee"), valid=True):
    for name in classes:
        make_images(tmp_path / "train" / name, 3)
        if valid:
            make_images(tmp_path / "valid" / name, 1)
    path = {"root": str(tmp_path), "train": {"image": "train"}}
    if valid:
        path["valid"] = {"image": "valid"}
    return resolve_data({"path": path, "image_size": 8})


def test_image_folder_layout(tmp_path, make_images):
    data = build_data(_folders(tmp_path, make_images))
    assert data.class_names == ["ant", "bee"]
    assert len(data.splits["train"]) == 6 and len(data.splits["valid"]) == 2
    assert [data.splits["train"][i][1] for i in range(6)] == [0, 0, 0, 1, 1, 1]


def test_image_folder_without_valid_holds_out_a_fixed_part(tmp_path, make_images):
    data = build_data(_folders(tmp_path, make_images, valid=False))
    assert len(data.splits["train"]) + len(data.splits["valid"]) == 6
    assert "holding out" in data.notes[0]
    assert (
        data.splits["valid"].indices == build_data(_folders(tmp_path, make_images, valid=False)).splits["valid"].indices
    )


def test_empty_dataset_is_an_error(tmp_path):
    (tmp_path / "train" / "ant").mkdir(parents=True)
    config = resolve_data({"path": {"root": str(tmp_path), "train": {"image": "train"}}})
    with pytest.raises(DataError, match="the train split is empty"):
        build_data(config)
    empty = tmp_path / "empty"
    (empty / "train").mkdir(parents=True)
    with pytest.raises(DataError, match="no class sub-folders"):
        build_data(resolve_data({"path": {"root": str(empty), "train": {"image": "train"}}}))


def test_valid_class_folder_must_exist_in_train(tmp_path, make_images):
    config = _folders(tmp_path, make_images)
    make_images(tmp_path / "valid" / "wasp", 1)
    with pytest.raises(DataError, match=r"valid/wasp: class folder not in the class list \(ant, bee\)"):
        build_data(config)


def test_num_classes_in_the_data_section_is_checked(tmp_path, make_images):
    config = _folders(tmp_path, make_images)
    config["num_classes"] = 3
    with pytest.raises(DataError, match="data.num_classes is 3, but the data has 2 classes"):
        build_data(config)
