"""NetsPresso Trainer's ``hsvjitter`` and ``randomresize`` (used by its COCO detection recipes), on batches:
what each does to pixels and targets, reproducibly from the step's seed, and a detection run with the peer's
YOLOX recipe shape (mosaic, hsvjitter, flip, resize + pad, randomresize)."""

import csv

import pytest
import torch

from helpers import run_cli
from npc.runtime.data import Preprocess, build_augmentation
from npc.spec.run_config import resolve_augmentation
from tests.unit.runtime.test_augment import HEADS, TASK_SPEC

SIDE = 32
PREPROCESS = Preprocess("rgb", SIDE, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _augment(train: list[dict], task: str):
    resolved, problems = resolve_augmentation({"train": train}, {"image_size": SIDE}, task=task)
    assert problems == []
    return build_augmentation(resolved, task=task, preprocess=PREPROCESS, seed=7)


def _images(count: int = 6) -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(count, 3, SIDE, SIDE) * 2 - 1


def test_hsvjitter_shifts_hue_saturation_and_value_by_whole_steps_and_keeps_targets():
    augment = _augment([{"name": "hsvjitter", "h_mag": 5, "s_mag": 30, "v_mag": 30}], "segmentation")
    images, masks = _images(), torch.randint(0, 3, (6, SIDE, SIDE))
    out, out_masks = augment(images, masks, epoch=0, step=0)
    assert torch.equal(out_masks, masks) and out.shape == images.shape
    changed = (out - images).abs().amax(dim=(1, 2, 3)) > 1e-3
    assert changed.any() and out.min() >= -1 - 1e-5 and out.max() <= 1 + 1e-5
    again, _ = augment(images, masks, epoch=0, step=0)
    assert torch.equal(again, out)  # the step's seed decides: a resumed run sees the same jitter
    assert not torch.equal(augment(images, masks, epoch=0, step=1)[0], out)


def test_hsvjitter_at_zero_magnitude_changes_nothing():
    augment = _augment([{"name": "hsvjitter", "h_mag": 0, "s_mag": 0, "v_mag": 0}], "classification")
    images = _images()
    out, _ = augment(images, torch.zeros(6, dtype=torch.long), epoch=0, step=0)
    torch.testing.assert_close(out, images, atol=1e-4, rtol=0)


def test_randomresize_gives_each_batch_one_size_from_the_range_and_scales_boxes():
    augment = _augment(
        [{"name": "randomresize", "base_size": [SIDE, SIDE], "stride": 8, "random_range": 2}], "detection"
    )
    box = torch.tensor([[4.0, 8.0, 12.0, 16.0]])
    target = [{"boxes": box.clone(), "labels": torch.tensor([1])} for _ in range(2)]
    sizes = set()
    for step in range(12):
        out, moved = augment(_images(2), target, epoch=0, step=step)
        side = out.shape[-1]
        assert out.shape[-2] == side and side in (16, 24, 32, 40, 48)
        # scaled with the image, to within a pixel (kornia maps corner pixel centres onto each other)
        torch.testing.assert_close(moved[0]["boxes"], box * side / SIDE, atol=1.0, rtol=0)
        sizes.add(side)
    assert len(sizes) > 2  # several sizes over the steps


@pytest.mark.parametrize(
    ("transform", "pointer", "message"),
    [
        ({"name": "randomresize", "base_size": 32, "stride": 16, "random_range": 2}, "/train/0/random_range", ">= 1"),
        ({"name": "randomresize", "base_size": 40, "stride": 4, "random_range": 1}, "/train/0/base_size", "32x32"),
    ],
)
def test_randomresize_ranges_that_cannot_work_are_located(transform, pointer, message):
    _, problems = resolve_augmentation(
        {"train": [transform, {"name": "resize", "size": [SIDE, SIDE]}]}, {"image_size": SIDE}, task="detection"
    )
    assert any(p == pointer and message in m for p, m in problems), problems


YOLOX_LIKE = """\
augmentation:
  train:
    - {name: mosaicdetection, size: [32, 32], mosaic_prob: 1.0, affine_scale: [0.5, 1.5], degrees: 10.0,
       translate: 0.1, shear: 2.0, enable_mixup: True, mixup_prob: 1.0, mixup_scale: [0.1, 2.0], fill: 114,
       mosaic_off_duration: 1}
    - {name: hsvjitter, h_mag: 5, s_mag: 30, v_mag: 30}
    - {name: randomhorizontalflip, p: 0.5}
    - {name: resize, size: 32, interpolation: bilinear, max_size: ~, resize_criteria: long}
    - {name: pad, size: 32, fill: 114}
    - {name: randomresize, base_size: [32, 32], stride: 8, random_range: 1, interpolation: bilinear}
    - {name: totensor, pixel_range: 1.0}
    - {name: normalize, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}
  inference:
    - {name: resize, size: 32, interpolation: bilinear, max_size: ~, resize_criteria: long}
    - {name: totensor, pixel_range: 1.0}
    - {name: normalize, mean: [0.5, 0.5, 0.5], std: [0.5, 0.5, 0.5]}
"""


def test_the_peers_yolox_recipe_shape_trains(capsys, tmp_path):
    spec = tmp_path / "spec.yaml"
    text = TASK_SPEC.format(task="detection", head=HEADS["detection"]).replace("epochs: 1", "epochs: 2")
    spec.write_text(text.replace("image_size: 32, ", "") + YOLOX_LIKE)
    code, out, err = run_cli(capsys, "train", spec, "--out", tmp_path / "run", "--no-tensorboard")
    assert code == 0, out + err
    assert "mosaicdetection, hsvjitter, randomhorizontalflip, resize, pad, randomresize" in out
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 2


def test_a_resumed_run_replays_hsvjitter_randomresize_and_randomzoomout(tmp_path, write_spec, tiny_model_py):
    """Stopped after epoch 1 and resumed: the same jitter and sizes are drawn, so the weights equal a straight run's."""
    from rich.console import Console

    from npc.runtime.checkpoint import load_weights
    from npc.runtime.engine import TrainOptions, train
    from npc.spec.run_config import load_run_config

    spec = write_spec(
        "epochs: 2\nbatch_size: 128\nseed: 3\noptimizer: {name: adamw, lr: 0.01}", "format: digits\nimage_size: 16"
    )
    spec.write_text(
        spec.read_text()
        + "augmentation:\n  train:\n    - {name: hsvjitter, h_mag: 5, s_mag: 30, v_mag: 30}\n"
        + "    - {name: randomresize, base_size: 16, stride: 4, random_range: 1}\n"
        + "    - {name: randomzoomout, side_range: [1.0, 2.0], p: 0.5}\n"
    )

    def run(out, **kwargs):
        options = TrainOptions(out_dir=out, model_py=tiny_model_py, tensorboard=False, **kwargs)
        return train(load_run_config(spec), options, Console(quiet=True))

    run(tmp_path / "straight")
    run(tmp_path / "split", stop_after=1)
    run(tmp_path / "split", resume=tmp_path / "split")
    straight, _ = load_weights(tmp_path / "straight" / "last.safetensors")
    split, _ = load_weights(tmp_path / "split" / "last.safetensors")
    for key, value in straight.items():
        torch.testing.assert_close(split[key], value, rtol=0, atol=1e-6, msg=key)


def _red_square(count: int = 2, box=(8, 4, 24, 20)) -> torch.Tensor:
    x1, y1, x2, y2 = box
    pixels = torch.zeros(count, 3, SIDE, SIDE)
    pixels[:, 0, y1:y2, x1:x2] = 1.0
    return pixels * 2 - 1  # normalised with mean = std = 0.5


def test_randomzoomout_shrinks_each_chosen_image_onto_a_filled_canvas_with_its_boxes():
    augment = _augment([{"name": "randomzoomout", "fill": 0, "side_range": [2.0, 2.0], "p": 1.0}], "detection")
    target = [{"boxes": torch.tensor([[8.0, 4.0, 24.0, 20.0]]), "labels": torch.tensor([1])} for _ in range(2)]
    out, moved = augment(_red_square(), target, epoch=0, step=0)
    for image, entry in zip(out, moved, strict=True):
        x1, y1, x2, y2 = entry["boxes"][0].tolist()
        assert (x2 - x1, y2 - y1) == pytest.approx((8.0, 8.0), abs=1e-4)  # half the side: a canvas twice as large
        red = (image[0] > 0).nonzero()  # the square's pixels, where the box now says
        assert (
            red[:, 1].min() >= x1 - 1 and red[:, 1].max() <= x2 and red[:, 0].min() >= y1 - 1 and red[:, 0].max() <= y2
        )
        assert int((image[0] > 0).sum()) == pytest.approx(64, abs=16)  # 16x16 red pixels became about 8x8


def test_randomzoomout_ignores_the_canvas_in_masks_and_moves_keypoints():
    augment = _augment([{"name": "randomzoomout", "side_range": [2.0, 2.0], "p": 1.0}], "segmentation")
    masks = torch.ones(2, SIDE, SIDE, dtype=torch.long)
    _, moved = augment(_red_square(), masks, epoch=0, step=0)
    assert ((moved == 1).sum(dim=(1, 2)) == SIDE * SIDE // 4).all() and set(moved.unique().tolist()) == {1, 255}
    augment = _augment([{"name": "randomzoomout", "side_range": [2.0, 2.0], "p": 1.0}], "pose_estimation")
    keypoints = torch.tensor([[[8.0, 4.0, 1.0], [23.0, 19.0, 1.0]]]).repeat(2, 1, 1)  # the square's corner pixels
    out, moved = augment(_red_square(), keypoints, epoch=0, step=0)
    for image, points in zip(out, moved, strict=True):
        (x1, y1, _), (x2, y2, _) = points.tolist()
        assert x2 - x1 == pytest.approx(7.5) and y2 - y1 == pytest.approx(7.5)
        assert image[0, round(y1), round(x1)] > -1 and points[:, 2].tolist() == [1.0, 1.0]


def test_randomzoomout_at_probability_zero_changes_nothing():
    augment = _augment([{"name": "randomzoomout", "p": 0.0}], "classification")
    images = _images()
    assert torch.equal(augment(images, torch.zeros(6, dtype=torch.long), epoch=0, step=0)[0], images)


# --- randomioucrop, randomresize2, trivialaugmentwide, autoaugment, posetopdownaffine ---------------------------


def _problems(train: list[dict], task: str, inference: list[dict] | None = None, data=None) -> list[tuple[str, str]]:
    section = {"train": train, **({"inference": inference} if inference else {})}
    return resolve_augmentation(section, data or {"image_size": SIDE}, task=task)[1]


@pytest.mark.parametrize(
    ("transform", "task", "pointer", "message"),
    [
        ({"name": "randomioucrop", "min_scale": 0.9, "max_scale": 0.5}, "detection", "/train/0/min_scale", "min <="),
        (
            {"name": "randomioucrop", "min_aspect_ratio": 3.0, "max_aspect_ratio": 2.0},
            "detection",
            "/train/0/min_aspect_ratio",
            "min_aspect_ratio 3.0 > max_aspect_ratio 2.0",
        ),
        (
            {"name": "randomioucrop"},
            "segmentation",
            "/train/0/name",
            "randomioucrop is for detection; not segmentation",
        ),
        ({"name": "randomresize2", "random_range": [2.0, 1.0]}, "segmentation", "/train/0/random_range", "min <="),
        ({"name": "trivialaugmentwide"}, "detection", "/train/0/name", "is for classification; not detection"),
        ({"name": "autoaugment"}, "segmentation", "/train/0/name", "is for classification; not segmentation"),
        ({"name": "posetopdownaffine"}, "detection", "/train/0/name", "is for pose_estimation; not detection"),
        ({"name": "posetopdownaffine", "scale": [1.5, 0.5]}, "pose_estimation", "/train/0/scale", "min <="),
        ({"name": "posetopdownaffine", "size": [32, 32]}, "pose_estimation", "/train/0/size", "must be [24, 32]"),
    ],
)
def test_the_new_transforms_settings_that_cannot_work_are_located(transform, task, pointer, message):
    data = {"input_size": [32, 24]} if task == "pose_estimation" else None
    problems = _problems([transform], task, data=data)
    assert any(p == pointer and message in m for p, m in problems), problems


@pytest.mark.parametrize(
    ("entry", "pointer", "message"),
    [
        ("{name: autoaugment, policy: imagenet2}", "/augmentation/train/0/policy", "imagenet"),
        ("{name: trivialaugmentwide, fill: [1, 2]}", "/augmentation/train/0/fill", ""),
        ("{name: trivialaugmentwide, num_magnitude_bins: 1}", "/augmentation/train/0/num_magnitude_bins", ""),
        ("{name: randomioucrop, min_scale: 1.5}", "/augmentation/train/0/min_scale", ""),
        ("{name: randomresize2, random_range: 2}", "/augmentation/train/0/random_range", ""),
        ("{name: posetopdownaffine, rotation_prob: 2}", "/augmentation/train/0/rotation_prob", ""),
        ("{name: randomioucrop, sampler_option: [0.5]}", "/augmentation/train/0/sampler_option", "sampler_options"),
    ],
)
def test_the_new_transforms_keys_are_checked_by_the_schema_with_their_place(write_spec, entry, pointer, message):
    from npc.spec import SpecError
    from npc.spec.run_config import load_run_config

    spec = write_spec("epochs: 1", "format: digits\nimage_size: 32")
    spec.write_text(spec.read_text() + f"augmentation:\n  train:\n    - {entry}\n")
    with pytest.raises(SpecError) as info:
        load_run_config(spec)
    assert any(d.pointer == pointer and message in d.message for d in info.value.diagnostics), [
        (d.pointer, d.message) for d in info.value.diagnostics
    ]


def test_the_peers_pose_recipe_is_accepted_and_its_inference_crop_must_not_jitter():
    peer = {
        "name": "posetopdownaffine",
        "scale": [0.75, 1.25],
        "scale_prob": 1.0,
        "translate": 0.1,
        "translate_prob": 1.0,
        "rotation": 60,
        "rotation_prob": 1.0,
        "size": [24, 32],
    }
    still = {**peer, "scale": [1.0, 1.0], "scale_prob": 0.0, "translate": 0.0, "translate_prob": 0.0, "rotation": 0}
    data = {"input_size": [32, 24]}
    assert _problems([{"name": "randomhorizontalflip"}, peer], "pose_estimation", [still], data) == []
    problems = _problems([peer], "pose_estimation", [{**still, "rotation": 10, "rotation_prob": 0.5}], data)
    assert any(p == "/inference/0" and "rotation_prob: 0" in m for p, m in problems), problems


def _two_objects(count: int):
    """A red square (class 1) and a green one (class 2) per image, with their boxes."""
    pixels = torch.zeros(count, 3, SIDE, SIDE)
    pixels[:, 0, 4:14, 4:14] = 1.0
    pixels[:, 1, 18:30, 16:30] = 1.0
    boxes = torch.tensor([[4.0, 4.0, 14.0, 14.0], [16.0, 18.0, 30.0, 30.0]])
    target = [{"boxes": boxes.clone(), "labels": torch.tensor([1, 2])} for _ in range(count)]
    return pixels * 2 - 1, target


def test_randomioucrop_keeps_the_boxes_whose_centres_stay_and_moves_them_with_the_pixels():
    augment = _augment([{"name": "randomioucrop", "min_scale": 0.4, "sampler_options": [0.0, 0.3]}], "detection")
    images, target = _two_objects(16)
    out, moved = augment(images, target, epoch=0, step=0)
    assert out.shape == images.shape
    cropped = 0
    for image, entry in zip((out + 1) / 2, moved, strict=True):
        assert 1 <= len(entry["boxes"]) <= 2 and set(entry["labels"].tolist()) <= {1, 2}
        for box, label in zip(entry["boxes"].tolist(), entry["labels"].tolist(), strict=True):
            channel = image[label - 1] > 0.5  # the object's pixels, stretched with the crop
            ys, xs = torch.nonzero(channel, as_tuple=True)
            assert len(xs) > 0
            edges = [float(xs.min()), float(ys.min()), float(xs.max() + 1), float(ys.max() + 1)]
            assert edges == pytest.approx(box, abs=1.5), (edges, box)
        cropped += not torch.equal(entry["boxes"], target[0]["boxes"])
    assert cropped > 8
    again = augment(images, target, epoch=0, step=0)
    assert torch.equal(again[0], out) and all(torch.equal(a["boxes"], b["boxes"]) for a, b in zip(again[1], moved))


def test_randomioucrop_that_draws_iou_one_or_has_no_box_leaves_the_sample():
    augment = _augment([{"name": "randomioucrop", "sampler_options": [1.0]}], "detection")
    images, target = _two_objects(4)
    out, moved = augment(images, target, epoch=0, step=0)
    assert torch.equal(out, images) and all(torch.equal(m["boxes"], t["boxes"]) for m, t in zip(moved, target))
    augment = _augment([{"name": "randomioucrop", "sampler_options": [0.0]}], "detection")
    empty = [{"boxes": torch.zeros(0, 4), "labels": torch.zeros(0, dtype=torch.long)} for _ in range(4)]
    assert torch.equal(augment(images, empty, epoch=0, step=0)[0], images)


def test_randomresize2_shrinks_each_sample_onto_the_batch_size_with_its_mask_boxes_and_keypoints():
    transform = {"name": "randomresize2", "random_range": [0.5, 0.5], "interpolation": "nearest"}
    images = _red_square()
    out, moved = _augment([transform], "detection")(
        images, [{"boxes": torch.tensor([[8.0, 4.0, 24.0, 20.0]]), "labels": torch.tensor([1])}] * 2, epoch=0, step=0
    )
    assert out.shape == images.shape
    for image, entry in zip(out, moved, strict=True):
        assert entry["boxes"].tolist() == [[4.0, 2.0, 12.0, 10.0]]  # half size, at the top left (padding right/bottom)
        ys, xs = torch.nonzero(image[0] > 0, as_tuple=True)
        assert [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] == [4, 2, 12, 10]
    masks = torch.zeros(2, SIDE, SIDE, dtype=torch.long)
    masks[:, 4:20, 8:24] = 1
    _, moved = _augment([transform], "segmentation")(images, masks, epoch=0, step=0)
    assert ((moved == 1).sum(dim=(1, 2)) == 64).all() and ((moved == 255).sum(dim=(1, 2)) == SIDE * SIDE * 3 // 4).all()
    keypoints = torch.tensor([[[8.0, 4.0, 1.0], [23.0, 19.0, 1.0]]]).repeat(2, 1, 1)  # the square's corner pixels
    _, moved = _augment([transform], "pose_estimation")(images, keypoints, epoch=0, step=0)
    assert moved[0].tolist() == [[3.75, 1.75, 1.0], [11.25, 9.25, 1.0]]  # pixel centres: (x + 0.5) / 2 - 0.5


def test_randomresize2_enlarges_with_a_random_crop_and_drops_boxes_that_leave():
    transform = {"name": "randomresize2", "random_range": [2.0, 2.0], "interpolation": "nearest"}
    images = _red_square(count=12, box=(2, 2, 10, 10))
    target = [{"boxes": torch.tensor([[2.0, 2.0, 10.0, 10.0]]), "labels": torch.tensor([1])} for _ in range(12)]
    out, moved = _augment([transform], "detection")(images, target, epoch=0, step=0)
    dropped = 0
    for image, entry in zip(out, moved, strict=True):
        red = image[0] > 0
        if not len(entry["boxes"]):
            dropped += 1
            assert red.sum() < 0.2 * 256  # under a fifth of the (16x16) square was left in the crop
            continue
        ((x1, y1, x2, y2),) = entry["boxes"].tolist()
        ys, xs = torch.nonzero(red, as_tuple=True)
        assert [int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1] == [x1, y1, x2, y2]
    assert 0 < dropped < 12  # the random windows lose the square sometimes


@pytest.mark.parametrize("name", ["trivialaugmentwide", "autoaugment"])
def test_auto_augment_policies_draw_an_op_per_sample_reproducibly(name):
    augment = _augment([{"name": name, "interpolation": "bilinear", "fill": 114}], "classification")
    images = _images(32)
    labels = torch.zeros(32, dtype=torch.long)
    out, same_labels = augment(images, labels, epoch=0, step=0)
    assert out.shape == images.shape and same_labels is labels
    assert out.min() >= -1 - 1e-5 and out.max() <= 1 + 1e-5
    changes = (out - images).abs().flatten(1).mean(dim=1)
    assert len({round(float(c), 3) for c in changes}) > 8  # samples drew different ops and magnitudes
    assert torch.equal(augment(images, labels, epoch=0, step=0)[0], out)
    assert not torch.equal(augment(images, labels, epoch=0, step=1)[0], out)


@pytest.mark.parametrize(
    ("op", "magnitude"),
    [
        ("brightness", 0.5), ("color", -0.6), ("contrast", 0.8), ("sharpness", 0.9), ("posterize", 3),
        ("solarize", 128), ("auto_contrast", 0), ("equalize", 0), ("invert", 0), ("rotate", 30), ("rotate", -100),
        ("shear_x", 0.3), ("shear_y", -0.4), ("translate_x", 7.6), ("translate_y", -5.2),
    ],
)  # fmt: skip
def test_each_policy_op_does_what_torchvisions_does_on_the_peers_pil_images(op, magnitude):
    """The peer runs torchvision's _apply_op on PIL images: its enhancers, ImageOps and affine warps (nearest)."""
    import numpy as np
    from PIL import Image, ImageEnhance, ImageOps

    from npc.runtime.data.augment import _AutoAugment

    small = np.random.RandomState(0).randint(0, 256, (6, 6, 3)).astype(np.uint8)
    image = Image.fromarray(small).resize((24, 24), Image.BILINEAR)
    enhancers = {"brightness": ImageEnhance.Brightness, "color": ImageEnhance.Color}
    enhancers |= {"contrast": ImageEnhance.Contrast, "sharpness": ImageEnhance.Sharpness}
    warps = {  # PIL's affine data: the inverse map, output → input
        "rotate": None,
        "shear_x": (1, magnitude, 0, 0, 1, 0),
        "shear_y": (1, 0, 0, magnitude, 1, 0),
        "translate_x": (1, 0, -int(magnitude), 0, 1, 0),
        "translate_y": (1, 0, 0, 0, 1, -int(magnitude)),
    }
    if op in enhancers:
        expected = enhancers[op](image).enhance(1 + magnitude)
    elif op == "rotate":
        expected = image.rotate(magnitude, resample=Image.NEAREST)
    elif op in warps:
        expected = image.transform(image.size, Image.AFFINE, warps[op], resample=Image.NEAREST)
    elif op in ("posterize", "solarize"):
        expected = getattr(ImageOps, op)(image, int(magnitude))
    else:
        expected = getattr(ImageOps, op.replace("_", ""))(image)
    pixels = torch.tensor(np.array(image)).permute(2, 0, 1).float()[None] / 255
    stage = _AutoAugment(None, 31, "nearest", None)
    out = stage._run(pixels, [[op]], [[float(magnitude)]], [[True]])[0]
    reference = torch.tensor(np.array(expected)).permute(2, 0, 1).float() / 255
    torch.testing.assert_close(out, reference, atol=1.5 / 255, rtol=0)  # PIL rounds to whole levels


def _lit_pose(count: int):
    """32x24 crops with a 3x3 lit patch (channel k) around keypoint k, all visible."""
    keypoints = torch.tensor([[12.0, 16.0, 1.0], [6.0, 9.0, 1.0], [17.0, 24.0, 1.0]]).repeat(count, 1, 1)
    pixels = torch.zeros(count, 3, 32, 24)
    for k, (x, y, _) in enumerate(keypoints[0].tolist()):
        pixels[:, k, int(y) - 1 : int(y) + 2, int(x) - 1 : int(x) + 2] = 1.0
    return pixels * 2 - 1, keypoints


def _pose_affine(**params):
    from tests.unit.runtime.test_augment import POSE_PREPROCESS

    resolved, problems = resolve_augmentation(
        {"train": [{"name": "posetopdownaffine", **params}]}, {"input_size": [32, 24]}, task="pose_estimation"
    )
    assert problems == []
    return build_augmentation(resolved, task="pose_estimation", preprocess=POSE_PREPROCESS, seed=5)


def test_posetopdownaffine_moves_the_keypoints_with_the_crop():
    augment = _pose_affine(scale=[0.75, 1.25], translate=0.1, rotation=60)  # the peer's recipe
    images, keypoints = _lit_pose(16)
    out, moved = augment(images, keypoints, epoch=0, step=0)
    assert out.shape == images.shape and moved.shape == keypoints.shape
    assert not torch.equal(moved, keypoints)
    for image, points in zip((out + 1) / 2, moved, strict=True):
        for k, (x, y, visible) in enumerate(points.tolist()):
            if not visible:
                assert not (0 <= round(x) < 24 and 0 <= round(y) < 32)
                continue
            ys, xs = torch.nonzero(image[k] > 0.3, as_tuple=True)  # the lit patch, resampled
            assert float(xs.float().mean()) == pytest.approx(x, abs=1.0)
            assert float(ys.float().mean()) == pytest.approx(y, abs=1.0)
    again = augment(images, keypoints, epoch=0, step=0)
    assert torch.equal(again[0], out) and torch.equal(again[1], moved)


def test_posetopdownaffine_without_jitter_is_the_loaders_crop_and_a_scale_zooms_about_the_centre():
    images, keypoints = _lit_pose(2)
    out, moved = _pose_affine(scale_prob=0.0, translate_prob=0.0, rotation_prob=0.0)(images, keypoints, epoch=0, step=0)
    torch.testing.assert_close(out, images, atol=1e-5, rtol=0)
    torch.testing.assert_close(moved, keypoints)
    _, moved = _pose_affine(scale=[2.0, 2.0], translate_prob=0.0, rotation_prob=0.0)(images, keypoints, epoch=0, step=0)
    centre = torch.tensor([11.5, 15.5])  # pixel centres of a 24 x 32 crop
    torch.testing.assert_close(moved[..., :2], centre + (keypoints[..., :2] - centre) / 2)  # a box twice as large


def _straight_and_split(spec, tmp_path) -> None:
    """The run straight, and stopped after epoch 1 then resumed: the same draws, so the same weights bit for bit."""
    from rich.console import Console

    from npc.runtime.checkpoint import load_weights
    from npc.runtime.engine import TrainOptions, train
    from npc.spec.run_config import load_run_config

    def run(out, **kwargs):
        return train(load_run_config(spec), TrainOptions(out_dir=out, tensorboard=False, **kwargs), Console(quiet=True))

    run(tmp_path / "straight")
    run(tmp_path / "split", stop_after=1)
    run(tmp_path / "split", resume=tmp_path / "split")
    straight, _ = load_weights(tmp_path / "straight" / "last.safetensors")
    split, _ = load_weights(tmp_path / "split" / "last.safetensors")
    for key, value in straight.items():
        assert torch.equal(split[key], value), key


def test_a_resumed_detection_run_replays_randomioucrop_and_randomresize2(tmp_path):
    spec = tmp_path / "spec.yaml"
    text = TASK_SPEC.format(task="detection", head=HEADS["detection"]).replace("epochs: 1", "epochs: 2")
    spec.write_text(
        text
        + "augmentation:\n  train:\n    - {name: randomioucrop, p: 0.8}\n"
        + "    - {name: randomresize2, random_range: [0.7, 1.3]}\n"
    )
    _straight_and_split(spec, tmp_path)


def test_a_resumed_pose_run_replays_posetopdownaffine(tmp_path):
    from tests.unit.runtime.test_augment import POSE_SPEC

    spec = tmp_path / "pose.yaml"
    spec.write_text(
        POSE_SPEC
        + "data: {num_train: 16, num_valid: 8}\n"
        + "augmentation:\n  train:\n    - {name: randomhorizontalflip, p: 0.5}\n"
        + "    - {name: posetopdownaffine, scale: [0.75, 1.25], translate: 0.1, rotation: 60}\n"
    )
    _straight_and_split(spec, tmp_path)


def test_randomresizedcrop_samples_pixel_centres_as_the_peers_pil_resize():
    """The peer crops and resizes PIL images (bilinear on pixel centres); kornia's default (align_corners=True)
    stretches the crop's corner pixels onto the output's, which samples another grid. A 16-pixel crop of a ramp
    upsampled 2x must step 0.25 at the edges (clamped, as PIL) and 0.5 inside, not 15/31 throughout."""
    transform = {"name": "randomresizedcrop", "size": [SIDE, SIDE], "scale": [0.25, 0.25], "ratio": [1.0, 1.0]}
    augment = _augment([{**transform, "interpolation": "bilinear"}], "classification")
    ramp = torch.arange(SIDE, dtype=torch.float32) / (SIDE - 1)  # 0 to 1 along x, one step per pixel
    images = (ramp.expand(2, 3, SIDE, SIDE) - 0.5) / 0.5
    out, _ = augment(images.clone(), torch.zeros(2, dtype=torch.long), epoch=0, step=0)
    steps = ((out * 0.5 + 0.5) * (SIDE - 1))[:, 0, 0].diff()  # in input pixels, along the first row
    expected = torch.full((SIDE - 1,), 0.5)
    expected[0] = expected[-1] = 0.25
    torch.testing.assert_close(steps, expected.expand_as(steps), atol=1e-4, rtol=0)
