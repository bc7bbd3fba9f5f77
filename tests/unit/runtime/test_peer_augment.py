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
