"""NetsPresso's ImageNet recipes train at one size and evaluate at another: the ``inference`` list resizes every
validation image (here 40x40) and centre-crops it (32x32) while training crops at 24. npc's validation images (and
``npc predict``'s) follow that list, as the peer builds its inference transforms from it; training's do not."""

import json

import numpy as np
import pytest
import torch

from helpers import run_cli
from npc.runtime.data import Preprocess, build_data
from npc.spec.run_config import load_run_config, resolve_augmentation, resolve_data

AUGMENTATION = """\
augmentation:
  train:
    - {name: randomresizedcrop, size: 24, scale: [0.5, 1.0], ratio: [0.75, 1.33], interpolation: bilinear}
    - {name: randomhorizontalflip, p: 0.5}
  inference:
    - {name: resize, size: [40, 40], interpolation: bilinear, max_size: ~, resize_criteria: ~}
    - {name: centercrop, size: 32}
    - {name: totensor, pixel_range: 1.0}
    - {name: normalize, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}
"""


def _pictures(root, make_images, valid: bool = True):
    from PIL import Image

    for split in ("train", "valid") if valid else ("train",):
        for name in ("ant", "bee"):
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(3):
                pixels = np.random.RandomState(i + 10 * len(name)).randint(0, 256, (30, 50, 3)).astype(np.uint8)
                Image.fromarray(pixels).save(folder / f"{i}.png")
    path = {"root": str(root), "train": {"image": "train"}, **({"valid": {"image": "valid"}} if valid else {})}
    return {"path": path}


def _section():
    from ruamel.yaml import YAML

    return YAML(typ="safe").load(AUGMENTATION)["augmentation"]


def test_validation_images_are_resized_then_centre_cropped_as_the_inference_list_says(tmp_path, make_images):
    from PIL import Image

    data = resolve_data(_pictures(tmp_path, make_images), augmentation=_section())
    assert data["image_size"] == 24  # the model's training size: the train list's last size, as the peer takes it
    _, problems = resolve_augmentation(_section(), data, task="classification")
    assert problems == []
    bundle = build_data(data)
    image, _ = bundle.splits["train"][0]
    assert image.shape == (3, 24, 24)
    image, label = bundle.splits["valid"][0]
    assert image.shape == (3, 32, 32)
    path = tmp_path / "valid" / "ant" / "0.png"
    resized = np.asarray(Image.open(path).convert("RGB").resize((40, 40), Image.Resampling.BILINEAR))[4:36, 4:36]
    mean, std = torch.tensor(data["mean"]).view(3, 1, 1), torch.tensor(data["std"]).view(3, 1, 1)
    expected = (torch.from_numpy(resized.copy()).permute(2, 0, 1).float() / 255 - mean) / std
    torch.testing.assert_close(image, expected)
    again = Preprocess.from_json(bundle.preprocess.to_json())  # what the weights' metadata carries to predict
    assert again == bundle.preprocess and again.image(path).shape == (3, 32, 32)
    assert again.image(path, training=True).shape == (3, 24, 24)


def test_a_held_out_valid_split_is_evaluated_as_the_inference_list_says(tmp_path, make_images):
    bundle = build_data(resolve_data(_pictures(tmp_path, make_images, valid=False), augmentation=_section()))
    assert bundle.splits["train"][0][0].shape == (3, 24, 24) and bundle.splits["valid"][0][0].shape == (3, 32, 32)


def test_digits_are_evaluated_at_the_inference_size_too():
    bundle = build_data(resolve_data({"format": "digits"}, augmentation=_section()))
    assert bundle.splits["train"][0][0].shape == (3, 24, 24) and bundle.splits["valid"][0][0].shape == (3, 32, 32)


def test_other_tasks_and_other_lists_keep_the_input_size_rule():
    section = _section()
    _, problems = resolve_augmentation(section, {"image_size": 24}, task="segmentation")
    assert any(p == "/inference/0/size" and "changes the size" in m for p, m in problems), problems
    section["inference"][1]["size"] = 48
    data = resolve_data({"format": "digits"}, augmentation=section)
    _, problems = resolve_augmentation(section, data, task="classification")
    assert problems == [("/inference/1/size", "[48, 48] is larger than the image at this point (40x40)")]


def test_a_run_validates_and_predicts_at_the_peers_evaluation_size(capsys, tmp_path, write_spec, tiny_model_py):
    from PIL import Image

    spec = write_spec("epochs: 1\nbatch_size: 128\noptimizer: {name: adamw, lr: 0.01}", "format: digits")
    spec.write_text(spec.read_text() + AUGMENTATION.replace("0.485, 0.456, 0.406", "0.5, 0.5, 0.5").replace(
        "0.229, 0.224, 0.225", "0.5, 0.5, 0.5"))  # fmt: skip
    code, out, err = run_cli(
        capsys, "train", spec, "--model-py", tiny_model_py, "--out", tmp_path / "run", "--no-tensorboard"
    )
    assert code == 0, out + err
    resolved = load_run_config(tmp_path / "run" / "resolved.yaml")  # accepted again; the plan is read again
    assert resolved.data["image_size"] == 24 and resolved.data["_evaluation"] == {"resize": [40, 40], "crop": [32, 32]}
    assert "_evaluation" not in (tmp_path / "run" / "resolved.yaml").read_text()
    code, out, _ = run_cli(capsys, "evaluate", tmp_path / "run", "--format", "json")
    assert code == 0 and json.loads(out)["samples"] == 360
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "blank.png")
    code, out, err = run_cli(capsys, "predict", tmp_path / "run", tmp_path / "blank.png", "--format", "json")
    assert code == 0, out + err
    code, out, err = run_cli(capsys, "export", tmp_path / "run", "-o", tmp_path / "m.onnx", "--format", "json")
    assert code == 0, out + err
    assert "input size 32x32" in out  # the size it evaluates and predicts at, not the training crops' 24


@pytest.mark.parametrize("recipe", ["resnet50"])
def test_the_peers_resnet50_augmentation_file_is_accepted(recipe):
    from ruamel.yaml import YAML

    from helpers import REPO

    path = REPO.parent / "shared" / "peer" / "configs" / "benchmark_examples"
    file = path / f"classification-imagenet1k-{recipe}" / "augmentation.yaml"
    if not file.is_file():
        pytest.skip(f"the peer's published configs are not at {path}")
    section = YAML(typ="safe").load(file.read_text())["augmentation"]
    data = resolve_data({"format": "digits"}, augmentation=section)
    assert data["image_size"] == 176 and data["_evaluation"] == {"resize": [232, 232], "crop": [224, 224]}
    # its evaluation is accepted; its train list puts totensor and normalize after mixing, which the peer's own
    # transforms_check refuses too ("Mixing transform is in the middle of transforms")
    problems = resolve_augmentation(section, data, task="classification")[1]
    assert [p for p, _ in problems] == ["/train/4"] and "must be the last transform" in problems[0][1]
