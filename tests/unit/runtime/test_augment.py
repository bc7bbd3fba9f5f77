"""Training-time augmentation (``augmentation:`` with NetsPresso transform names, run by kornia on whole batches):
masks and boxes move exactly with the image, crops keep boxes inside, seeds reproduce, bad configs are located."""

import textwrap

import pytest
import torch
from rich.console import Console

from npc.runtime._augment import build_augmentation
from npc.runtime._checkpoint import load_training_state, load_weights
from npc.runtime._config import load_run_config, resolve_augmentation
from npc.runtime._data import Preprocess
from npc.runtime._errors import RunError
from npc.runtime._train import TrainOptions, train
from npc.spec import SpecError

SIDE = 32
PREPROCESS = Preprocess("rgb", SIDE, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # pixel p ↔ normalised 2p - 1


def _augment(train: list[dict], task: str):
    resolved, problems = resolve_augmentation({"train": train}, {"image_size": SIDE}, task=task)
    assert problems == []
    return build_augmentation(resolved, task=task, preprocess=PREPROCESS, seed=7)


def _scene(count: int = 2, box=(2, 4, 10, 14)):
    """Images whose red channel is 1 inside ``box`` (else 0), the matching class-1 mask and detection target."""
    x1, y1, x2, y2 = box
    pixels = torch.zeros(count, 3, SIDE, SIDE)
    pixels[:, 0, y1:y2, x1:x2] = 1.0
    pixels[:, 1] = torch.linspace(0, 1, SIDE)  # a gradient, so a flip of the background shows as well
    mask = torch.zeros(count, SIDE, SIDE, dtype=torch.long)
    mask[:, y1:y2, x1:x2] = 1
    target = [{"boxes": torch.tensor([box], dtype=torch.float32), "labels": torch.tensor([1])} for _ in range(count)]
    return pixels * 2 - 1, mask, target


def _pixels(images):
    return (images + 1) / 2


def _extent(region: torch.Tensor) -> list[float]:
    """x1, y1, x2, y2 (exclusive) of the True pixels of a (H, W) tensor."""
    ys, xs = torch.nonzero(region, as_tuple=True)
    return [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]


@pytest.mark.parametrize(
    ("name", "dims", "flipped"),
    [
        ("randomhorizontalflip", [-1], [SIDE - 10, 4, SIDE - 2, 14]),
        ("randomverticalflip", [-2], [2, SIDE - 14, 10, SIDE - 4]),
    ],
)
def test_flips_move_masks_and_boxes_exactly_as_the_image(name, dims, flipped):
    images, mask, target = _scene()
    out, out_mask = _augment([{"name": name, "p": 1.0}], "segmentation")(images, mask, epoch=0, step=0)
    torch.testing.assert_close(out, images.flip(dims))
    assert torch.equal(out_mask, mask.flip(dims))

    out, out_target = _augment([{"name": name, "p": 1.0}], "detection")(images, target, epoch=0, step=0)
    for sample in range(len(images)):
        assert out_target[sample]["boxes"].tolist() == [flipped]
        assert _extent(_pixels(out)[sample, 0] > 0.5) == flipped  # the box still frames the object's pixels
        assert out_target[sample]["labels"].tolist() == [1]


def test_flip_probability_flips_some_samples_and_their_targets_alone():
    images, mask, _ = _scene(count=64)
    out, out_mask = _augment([{"name": "randomhorizontalflip", "p": 0.5}], "segmentation")(
        images, mask, epoch=0, step=0
    )
    flipped = [torch.equal(out_mask[i], mask[i].flip(-1)) for i in range(64)]
    assert 10 < sum(flipped) < 54
    for i in range(64):
        expected = images[i].flip(-1) if flipped[i] else images[i]
        torch.testing.assert_close(out[i], expected)


def test_random_resized_crop_keeps_boxes_inside_and_on_their_object():
    images, _, target = _scene(count=16, box=(6, 8, 22, 26))
    augment = _augment([{"name": "randomresizedcrop", "scale": [0.2, 0.6], "ratio": [0.75, 1.33]}], "detection")
    kept = dropped = 0
    for step in range(6):
        out, out_target = augment(images, target, epoch=1, step=step)
        assert out.shape == images.shape
        for sample, entry in enumerate(out_target):
            boxes = entry["boxes"]
            assert len(boxes) == len(entry["labels"])
            if len(boxes) == 0:
                dropped += 1
                continue
            kept += 1
            assert (boxes >= 0).all() and (boxes <= SIDE).all() and (boxes[:, 2:] > boxes[:, :2]).all()
            object_pixels = _pixels(out)[sample, 0] > 0.5
            # resampling blurs the edges by up to a pixel or so; the box frames the object it came with
            torch.testing.assert_close(boxes[0].tolist(), _extent(object_pixels), atol=1.6, rtol=0)
    assert kept > 20 and dropped > 0  # crops that miss most of the object drop its box (< 20% visible)


def test_pad_then_random_crop_fills_the_padding_and_marks_its_mask_ignored():
    images, mask, _ = _scene(count=8)
    augment = _augment([{"name": "pad", "size": 48, "fill": 255}, {"name": "randomcrop", "size": 32}], "segmentation")
    out, out_mask = augment(images, mask, epoch=0, step=0)
    assert out.shape == images.shape and out_mask.shape == mask.shape
    padded = out_mask == 255
    assert padded.any() and (~padded).any()
    assert torch.allclose(_pixels(out)[:, 0][padded], torch.ones(1))  # fill 255 → pixel 1.0
    red = _pixels(out)[:, 0] > 0.5
    assert torch.equal(red[~padded], (out_mask == 1)[~padded])  # no resampling: mask and image move as one


def test_color_jitter_changes_pixels_only_and_renormalises():
    images, mask, _ = _scene()
    augment = _augment([{"name": "colorjitter", "brightness": [2.0, 2.0], "p": 1.0}], "segmentation")
    out, out_mask = augment(images * 0.5 - 0.5, mask, epoch=0, step=0)  # pixels 0.25 / 0.5 range halves
    torch.testing.assert_close(_pixels(out), (_pixels(images * 0.5 - 0.5) * 2).clamp(0, 1))
    assert torch.equal(out_mask, mask)


def test_random_erasing_writes_its_value_and_leaves_the_mask():
    images, mask, _ = _scene()
    augment = _augment([{"name": "randomerasing", "p": 1.0, "value": 255}], "segmentation")
    out, out_mask = augment(images, mask, epoch=0, step=0)
    erased = (_pixels(out) == 1.0).all(dim=1) & (_pixels(images)[:, 1] < 1.0)
    assert erased.any(dim=(1, 2)).all()
    assert torch.equal(out_mask, mask)


def test_same_seed_epoch_and_step_give_the_same_batch_and_leave_the_global_rng_alone():
    images, _, target = _scene(count=8)
    train_list = [{"name": "randomresizedcrop"}, {"name": "randomhorizontalflip"}, {"name": "colorjitter", "hue": 0.1}]
    augment = _augment(train_list, "detection")
    before = torch.get_rng_state()
    first, first_target = augment(images, target, epoch=2, step=5)
    assert torch.equal(torch.get_rng_state(), before)
    again, again_target = _augment(train_list, "detection")(images, target, epoch=2, step=5)
    assert torch.equal(first, again)
    assert all(torch.equal(a["boxes"], b["boxes"]) for a, b in zip(first_target, again_target, strict=True))
    other, _ = augment(images, target, epoch=2, step=6)
    assert not torch.equal(first, other)


# --- the config section -------------------------------------------------------------------------------------


def _spec_with(write_spec, augmentation: str, data: str = "format: digits\nimage_size: 32"):
    spec = write_spec("epochs: 1", data)
    spec.write_text(spec.read_text() + "augmentation:\n" + textwrap.indent(textwrap.dedent(augmentation), "  "))
    return spec


def _single_error(spec) -> tuple[str, str, int]:
    with pytest.raises(SpecError) as info:
        load_run_config(spec)
    (diagnostic,) = info.value.diagnostics
    return diagnostic.pointer, diagnostic.message, diagnostic.line


def test_an_unknown_transform_name_is_located_and_lists_the_supported_ones(write_spec):
    spec = _spec_with(write_spec, "train:\n  - {name: randomhorizontalflip, p: 0.5}\n  - {name: mosaicdetection}\n")
    pointer, message, line = _single_error(spec)
    assert pointer == "/augmentation/train/1/name"
    assert spec.read_text().splitlines()[line - 1].strip() == "- {name: mosaicdetection}"
    assert "'mosaicdetection' is not allowed" in message and "randomresizedcrop" in message and "colorjitter" in message


def test_a_key_the_transform_does_not_take_is_located(write_spec):
    spec = _spec_with(write_spec, "train:\n  - {name: randomhorizontalflip, prob: 0.5}\n")
    pointer, message, _ = _single_error(spec)
    assert pointer == "/augmentation/train/0/prob" and "unknown key 'prob' (allowed: name, p)" in message


def test_a_list_that_ends_at_another_size_than_the_data_is_an_error(write_spec):
    spec = _spec_with(write_spec, "train:\n  - {name: randomresizedcrop, size: 24}\n")
    pointer, message, _ = _single_error(spec)
    assert pointer == "/augmentation/train/0/size"
    assert "end at 24x24" in message and "data.image_size 32x32" in message


def test_img_size_must_be_the_data_image_size(write_spec):
    spec = _spec_with(write_spec, "img_size: 64\ntrain:\n  - {name: randomhorizontalflip}\n")
    pointer, message, _ = _single_error(spec)
    assert pointer == "/augmentation/img_size" and "data.image_size is 32" in message


def test_defaults_and_sizes_are_resolved_into_the_run_config(write_spec):
    spec = _spec_with(
        write_spec,
        "img_size: 32\ntrain:\n  - {name: resize, size: 40, resize_criteria: long}\n  - {name: centercrop}\n"
        "  - {name: totensor, pixel_range: 1.0}\ninference:\n  - {name: resize, size: [32, 32]}\n",
    )
    augmentation = load_run_config(spec).augmentation
    assert augmentation["train"][0]["size"] == [40, 40] and augmentation["train"][1]["size"] == [32, 32]
    assert augmentation["train"][0]["interpolation"] == "bilinear"
    assert augmentation["inference"] == [
        {"name": "resize", "interpolation": "bilinear", "max_size": None, "resize_criteria": None, "size": [32, 32]}
    ]


def test_a_normalize_step_that_disagrees_with_the_data_is_refused():
    resolved, _ = resolve_augmentation(
        {"train": [{"name": "normalize", "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}]},
        {"image_size": SIDE},
        task="classification",
    )
    with pytest.raises(RunError, match=r"augmentation.train\[0\] \(normalize\): mean"):
        build_augmentation(resolved, task="classification", preprocess=PREPROCESS, seed=0)


# --- training -----------------------------------------------------------------------------------------------

RECIPE = """\
train:
  - {name: randomresizedcrop, scale: [0.6, 1.0], ratio: [0.8, 1.25]}
  - {name: colorjitter, brightness: 0.2, contrast: 0.2, p: 1.0}
"""


def _train(spec, out, tiny_model_py, **kwargs):
    options = TrainOptions(out_dir=out, model_py=tiny_model_py, tensorboard=False, **kwargs)
    return train(load_run_config(spec), options, Console(file=open("/dev/null", "w")))  # noqa: SIM115


def _recipe_spec(write_spec, epochs: int):
    spec = write_spec(
        f"epochs: {epochs}\nbatch_size: 64\nseed: 3\noptimizer: {{name: adamw, lr: 0.02}}",
        "format: digits\nimage_size: 16",
    )
    spec.write_text(spec.read_text() + "augmentation:\n" + textwrap.indent(RECIPE, "  "))
    return spec


def test_training_with_augmentation_still_learns_digits(tmp_path, write_spec, tiny_model_py):
    result = _train(_recipe_spec(write_spec, 2), tmp_path / "run", tiny_model_py)
    assert result.best_metric > 0.3  # 10 classes: chance is 0.1
    again = load_run_config(tmp_path / "run" / "resolved.yaml")  # the recipe is recorded with the run
    assert [t["name"] for t in again.augmentation["train"]] == ["randomresizedcrop", "colorjitter"]


def test_a_resumed_augmented_run_ends_with_the_weights_of_a_straight_one(tmp_path, write_spec, tiny_model_py):
    spec = _recipe_spec(write_spec, 2)
    _train(spec, tmp_path / "straight", tiny_model_py)
    _train(spec, tmp_path / "split", tiny_model_py, stop_after=1)
    _train(spec, tmp_path / "split", tiny_model_py, resume=tmp_path / "split")
    assert load_training_state(tmp_path / "split")["epoch"] == 2
    straight, _ = load_weights(tmp_path / "straight" / "last.safetensors")
    split, _ = load_weights(tmp_path / "split" / "last.safetensors")
    for key, value in straight.items():
        torch.testing.assert_close(split[key], value, rtol=0, atol=1e-6, msg=key)


TASK_SPEC = """\
model:
  task: {task}
  name: tiny_{task}
  architecture:
    backbone:
      name: resnet
      params: {{block_type: basicblock, norm_type: batch_norm, return_stage_idx: [0, 1]}}
      stage_params:
        - {{channels: 8, num_blocks: 1}}
        - {{channels: 8, num_blocks: 1}}
{head}training: {{epochs: 1, batch_size: 8, optimizer: {{name: adamw, lr: 0.003}}}}
data: {{format: shapes, image_size: 32, num_train: 16, num_valid: 8}}
"""
HEADS = {
    "segmentation": "    head: {name: all_mlp_decoder, params: {intermediate_channels: 8}}\n"
    "  losses: [{criterion: seg_cross_entropy, ignore_index: 255}]\n",
    "detection": "    neck: {name: fpn, params: {num_outs: 2}}\n    head: {name: anchor_free_decoupled_head}\n"
    "  losses: [{criterion: yolox_loss, l1_activate_epoch: 1}]\n",
}
# crops that lose boxes (and leave images with none), padding that masks pixels out, flips and colour
TASK_RECIPE = """\
augmentation:
  img_size: 32
  train:
    - {name: pad, size: 40, fill: 114}
    - {name: randomresizedcrop, size: 32, scale: [0.1, 0.5], ratio: [0.75, 1.33], interpolation: bilinear}
    - {name: randomhorizontalflip, p: 0.5}
    - {name: colorjitter, brightness: 0.25, contrast: 0.25, saturation: 0.25, hue: 0.1, p: 1.0}
    - {name: totensor, pixel_range: 1.0}
    - {name: normalize, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}
  inference:
    - {name: resize, size: [32, 32], interpolation: bilinear, max_size: ~, resize_criteria: ~}
"""


@pytest.mark.parametrize("task", ["segmentation", "detection"])
def test_npc_train_takes_a_netspresso_augmentation_file(capsys, tmp_path, task):
    from npc.cli import main

    spec = tmp_path / "spec.yaml"
    spec.write_text(TASK_SPEC.format(task=task, head=HEADS[task]))
    recipe = tmp_path / "augmentation.yaml"
    recipe.write_text(TASK_RECIPE)
    code = main(["train", str(spec), "--augmentation", str(recipe), "--out", str(tmp_path / "run"), "--no-tensorboard"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "augmenting each training batch (kornia): pad, randomresizedcrop" in out
    resolved = load_run_config(tmp_path / "run" / "resolved.yaml")
    assert resolved.augmentation["train"][1]["size"] == [32, 32]

    code = main(["train", str(spec), "--augmentation", str(recipe), "--no-augment", "--out", str(tmp_path / "plain")])
    out, _ = capsys.readouterr()
    assert code == 0 and "augmenting" not in out
    assert load_run_config(tmp_path / "plain" / "resolved.yaml").augmentation is None
