"""Training-time augmentation (``augmentation:`` with NetsPresso transform names, run by kornia on whole batches):
masks and boxes move exactly with the image, crops keep boxes inside, seeds reproduce, bad configs are located."""

import csv
import textwrap
from pathlib import Path

import pytest
import torch
from rich.console import Console

from helpers import TINY_POSE_MODEL
from npc.runtime.checkpoint import load_training_state, load_weights
from npc.runtime.data import Preprocess, build_augmentation
from npc.runtime.data.augment import _kornia_modules
from npc.runtime.data.pose import PosePreprocess, _keypoint_swap
from npc.runtime.engine import TrainOptions, train
from npc.runtime.errors import DataError, RunError
from npc.spec import SpecError
from npc.spec.run_config import load_run_config, resolve_augmentation

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


def test_a_resize_to_the_size_the_images_have_costs_nothing_and_changes_nothing():
    """NetsPresso's recipes end with ``resize`` to the size the loader already made: no kornia module is built for
        it (it took half the augmentation time of a detection step); where a batch step before it may change the size,
    it stays."""
    images, _, target = _scene(count=4)
    same = _augment([{"name": "resize", "size": [SIDE, SIDE]}, {"name": "randomhorizontalflip", "p": 0.5}], "detection")
    flip_only = _augment([{"name": "randomhorizontalflip", "p": 0.5}], "detection")
    assert [len(list(stage.pipeline.children())) for stage in same.stages] == [1]
    out, out_target = same(images, target, epoch=1, step=3)
    want, want_target = flip_only(images, target, epoch=1, step=3)
    assert torch.equal(out, want) and all(torch.equal(a["boxes"], b["boxes"]) for a, b in zip(out_target, want_target))
    resize = {"name": "resize", "size": [SIDE, SIDE], "interpolation": "bilinear"}
    assert len(_kornia_modules(resize, (SIDE, SIDE), sure=False)) == 1  # after a size-changing batch step: kept


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
    spec = _spec_with(write_spec, "train:\n  - {name: randomhorizontalflip, p: 0.5}\n  - {name: randomrotation}\n")
    pointer, message, line = _single_error(spec)
    assert pointer == "/augmentation/train/1/name"
    assert spec.read_text().splitlines()[line - 1].strip() == "- {name: randomrotation}"
    assert "'randomrotation' is not allowed" in message and "randomresizedcrop" in message and "colorjitter" in message
    assert "posetopdownaffine" in message and "trivialaugmentwide" in message  # every name of the peer's registry


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
        f"epochs: {epochs}\nbatch_size: 64\nseed: 3\noptimizer: {{name: adamw, lr: 0.02}}\n"
        # NetsPresso's cosine without warm-up starts above lr on a short run (2x over 2 epochs); one warm-up epoch
        # starts at lr
        "scheduler: {name: cosine_no_sgdr, warmup_epochs: 1}",
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


def test_dataloader_workers_augment_the_batches_the_training_loop_would(capsys, tmp_path, monkeypatch):
    """On a CPU the loader augments, in its workers (overlapping the model's step); each batch still draws from its
    own (seed, epoch, step), so the weights equal those of augmenting in the loop (as on a GPU), with 0 or 2 workers."""
    from npc.cli import main
    from npc.runtime.engine import trainer

    recipe = tmp_path / "augmentation.yaml"
    recipe.write_text(TASK_RECIPE)
    weights, notes = {}, {}
    for where, workers in (("loop", 0), ("loader", 0), ("loader", 2)):
        monkeypatch.setattr(trainer, "_augments_in_loader", lambda device, where=where: where == "loader")
        spec = tmp_path / f"spec{workers}.yaml"
        training = f"training: {{{{epochs: 1, batch_size: 8, num_workers: {workers}, optimizer: {{{{name: adamw}}}}}}}}"
        text = TASK_SPEC.replace(
            "training: {{epochs: 1, batch_size: 8, optimizer: {{name: adamw, lr: 0.003}}}}", training
        )
        spec.write_text(text.format(task="detection", head=HEADS["detection"]))
        out = tmp_path / f"{where}{workers}"
        code = main(["train", str(spec), "--augmentation", str(recipe), "--out", str(out), "--no-tensorboard"])
        printed, err = capsys.readouterr()
        assert code == 0, printed + err
        notes[out.name] = next(line for line in printed.splitlines() if "augmenting each training batch" in line)
        weights[out.name], _ = load_weights(out / "last.safetensors")
    assert "(in the 2 DataLoader worker(s))" in notes["loader2"] and "(as each batch is loaded)" in notes["loader0"]
    for run in ("loader0", "loader2"):
        assert weights[run].keys() == weights["loop0"].keys()
        for key, value in weights["loop0"].items():
            assert torch.equal(weights[run][key], value), f"{run}: {key}"


def test_a_resumed_epoch_numbers_its_batches_from_where_it_stopped():
    from torch.utils.data import SequentialSampler

    from npc.runtime.data import ResumingSampler, StepBatches

    order = ResumingSampler(SequentialSampler(range(44)))
    order.skip = 16  # two batches of 8 were trained before the stop
    batches = StepBatches(order, 8, drop_last=True)
    batches.epoch = 3
    tagged = [(batch.epoch, batch.step, list(batch)) for batch in batches]
    assert [step for _, step, _ in tagged] == [2, 3, 4] and len(batches) == 3
    assert tagged[0] == (3, 2, list(range(16, 24)))


# --- pose -----------------------------------------------------------------------------------------------------

# the tiny rtmcc model on 32x24 inputs; the built-in stick figures come with their swap pairs
POSE_SPEC = (
    TINY_POSE_MODEL
    + """\
training: {epochs: 2, batch_size: 8, num_workers: 0, optimizer: {name: adamw, lr: 0.003}}
"""
)
POSE_SIZE = (32, 24)  # (height, width): pose inputs need not be square
POSE_PREPROCESS = PosePreprocess(*POSE_SIZE, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
TWINS = (0, 2, 1)  # a centre keypoint, then a left and a right one that trade places in a mirror


def _pose_augment(train: list[dict], keypoint_swap=TWINS):
    resolved, problems = resolve_augmentation({"train": train}, {"input_size": list(POSE_SIZE)}, task="pose_estimation")
    assert problems == []
    return build_augmentation(
        resolved, task="pose_estimation", preprocess=POSE_PREPROCESS, seed=7, keypoint_swap=keypoint_swap
    )


def _pose_scene(count: int = 1):
    """Keypoints (centre, left, right; the right one unlabelled) and images with a lit pixel on each: channel k
    of the pixel under keypoint k is 1, so the image shows where each keypoint should have gone."""
    keypoints = torch.tensor([[5.0, 6.0, 1.0], [2.0, 3.0, 1.0], [10.0, 20.0, 0.0]]).repeat(count, 1, 1)
    pixels = torch.zeros(count, 3, *POSE_SIZE)
    for k, (x, y, _) in enumerate(keypoints[0].tolist()):
        pixels[:, k, int(y), int(x)] = 1.0
    return pixels * 2 - 1, keypoints


def test_a_pose_flip_mirrors_the_keypoints_and_swaps_left_and_right():
    images, keypoints = _pose_scene()
    width, height = POSE_SIZE[1], POSE_SIZE[0]
    out, moved = _pose_augment([{"name": "randomhorizontalflip", "p": 1.0}])(images, keypoints, epoch=0, step=0)
    torch.testing.assert_close(out, images.flip(-1))
    # slot 1 (left) now holds the mirrored right keypoint, with the right keypoint's visibility, and vice versa
    assert moved[0].tolist() == [[width - 1 - 5, 6, 1], [width - 1 - 10, 20, 0], [width - 1 - 2, 3, 1]]
    out, moved = _pose_augment([{"name": "randomverticalflip", "p": 1.0}])(images, keypoints, epoch=0, step=0)
    assert moved[0].tolist() == [[5, height - 1 - 6, 1], [10, height - 1 - 20, 0], [2, height - 1 - 3, 1]]
    both = [{"name": "randomhorizontalflip", "p": 1.0}, {"name": "randomverticalflip", "p": 1.0}]
    out, moved = _pose_augment(both)(images, keypoints, epoch=0, step=0)  # a half turn: left stays left
    assert moved[0].tolist() == [[width - 1 - 5, height - 1 - 6, 1], [width - 1 - 2, height - 1 - 3, 1], [13, 11, 0]]


def test_pose_flips_at_half_probability_swap_exactly_the_flipped_samples():
    images, keypoints = _pose_scene(count=32)
    out, moved = _pose_augment([{"name": "randomhorizontalflip", "p": 0.5}])(images, keypoints, epoch=0, step=0)
    flipped = [torch.equal(out[i], images[i].flip(-1)) for i in range(32)]
    assert 6 < sum(flipped) < 26
    for i in range(32):
        for k in range(3):
            x, y, visible = moved[i, k].tolist()
            source = TWINS[k] if flipped[i] else k  # which keypoint's lit pixel this slot must sit on
            assert _pixels(out)[i, source, int(y), int(x)] == 1.0
            assert visible == keypoints[0, source, 2]


def test_pose_crops_move_keypoints_with_the_pixels_and_hide_those_that_leave():
    images, keypoints = _pose_scene(count=16)
    keypoints[:, 2, 2] = 1.0  # all labelled here
    crop = [{"name": "pad", "size": [48, 40]}, {"name": "randomcrop", "size": list(POSE_SIZE)}]
    out, moved = _pose_augment(crop)(images, keypoints, epoch=0, step=0)
    hidden = 0
    for i in range(16):
        for k in range(3):
            x, y, visible = moved[i, k].tolist()
            inside = 0 <= x < POSE_SIZE[1] and 0 <= y < POSE_SIZE[0]
            assert visible == float(inside)
            if inside:  # no resampling: the keypoint still sits on its lit pixel
                assert _pixels(out)[i, k, int(y), int(x)] == 1.0
            hidden += not inside
    assert hidden > 0  # some crops lost a keypoint


def test_a_pose_flip_without_swap_pairs_is_refused_with_the_way_out():
    with pytest.raises(RunError, match=r"augmentation.train\[1\] \(randomhorizontalflip\).*swap"):
        _pose_augment([{"name": "colorjitter"}, {"name": "randomhorizontalflip"}], keypoint_swap=None)
    assert _pose_augment([{"name": "colorjitter", "brightness": 0.2}], keypoint_swap=None) is not None


def test_swap_pairs_are_read_from_the_peers_id_mapping_and_checked():
    names = ["nose", "left_eye", "right_eye"]
    entries = [{"name": "nose", "swap": "nose"}, {"name": "left_eye", "swap": "right_eye"}]
    assert _keypoint_swap([*entries, {"name": "right_eye", "swap": "left_eye"}], Path(), names) == (0, 2, 1)
    assert _keypoint_swap(names, Path(), names) is None  # plain names: no swap information
    assert _keypoint_swap([*entries, {"name": "right_eye", "swap": None}], Path(), names) is None
    with pytest.raises(DataError, match=r"data.id_mapping\[2\].swap: 'chin' is not a keypoint name"):
        _keypoint_swap([*entries, {"name": "right_eye", "swap": "chin"}], Path(), names)
    with pytest.raises(DataError, match=r"data.id_mapping\[1\].swap: 'left_eye' swaps with 'right_eye', but"):
        _keypoint_swap([*entries, {"name": "right_eye", "swap": "nose"}], Path(), names)


POSE_RECIPE = """\
augmentation:
  train:
    - {name: randomresizedcrop, size: [32, 24], scale: [0.7, 1.0], ratio: [0.6, 0.9]}
    - {name: randomhorizontalflip, p: 0.5}
    - {name: colorjitter, brightness: 0.2, contrast: 0.2, p: 1.0}
"""


def test_pose_training_with_augmentation_still_learns(capsys, tmp_path):
    from npc.cli import main

    spec = tmp_path / "pose.yaml"
    spec.write_text(POSE_SPEC + "data: {num_train: 32, num_valid: 16}\n" + POSE_RECIPE)
    code = main(["train", str(spec), "--out", str(tmp_path / "run"), "--no-tensorboard"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "augmenting each training batch (kornia): randomresizedcrop, randomhorizontalflip, colorjitter" in out
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        losses = [float(row["train_loss"]) for row in csv.DictReader(handle)]
    assert len(losses) == 2 and losses[1] < losses[0]


def test_a_pose_augmentation_must_end_at_the_input_size(write_spec, tmp_path):
    spec = tmp_path / "pose.yaml"
    spec.write_text(POSE_SPEC + "augmentation:\n  train:\n    - {name: randomresizedcrop, size: 32}\n")
    pointer, message, _ = _single_error(spec)
    assert pointer == "/augmentation/train/0/size"
    assert "end at 32x32, but the model is fed data.input_size 32x24" in message


# --- mosaicdetection ------------------------------------------------------------------------------------------

STILL = {"degrees": 0.0, "translate": 0.0, "shear": 0.0, "enable_mixup": False}  # no affine beyond the scale


def _mosaic(epochs: int | None = None, **params):
    return build_augmentation(
        resolve_augmentation(
            {"train": [{"name": "mosaicdetection", **params}]}, {"image_size": SIDE}, task="detection"
        )[0],
        task="detection",
        preprocess=PREPROCESS,
        seed=7,
        epochs=epochs,
    )


def _painted(count: int):
    """Image i filled with its own colour, one box over the whole image, labelled i."""
    pixels = torch.stack([torch.full((3, SIDE, SIDE), 0.1 * (i + 1)) for i in range(count)])
    whole = torch.tensor([[0.0, 0.0, SIDE, SIDE]])
    return pixels * 2 - 1, [{"boxes": whole.clone(), "labels": torch.tensor([i])} for i in range(count)]


def test_a_mosaic_puts_an_image_in_each_quadrant_around_the_centre():
    images, target = _painted(1)  # a batch of one: all four quadrants hold the same image
    augment = _mosaic(affine_scale=[0.5, 0.5], fill=255, **STILL)  # the whole 2x canvas, halved
    for step in range(4):
        out, (entry,) = augment(images, target, epoch=0, step=step)
        boxes = entry["boxes"]
        assert entry["labels"].tolist() == [0, 0, 0, 0] and (boxes >= 0).all() and (boxes <= SIDE).all()
        top_left, top_right, bottom_left, bottom_right = boxes.tolist()
        centre = top_left[2:]  # where the four images meet, each cut off by the canvas edges on its own side
        assert top_right == [centre[0], top_left[1], top_right[2], centre[1]]
        assert bottom_left == [top_left[0], centre[1], centre[0], bottom_left[3]] and bottom_right[:2] == centre
        assert bottom_right[2:] == [top_right[2], bottom_left[3]]
        # each image is SIDE / 2 wide and high after halving, unless the canvas edge cut it (the warp maps pixel
        # centres, so canvas edge 0 lands at 0.25)
        assert top_left[:2] == [max(centre[0] - SIDE / 2, 0.25), max(centre[1] - SIDE / 2, 0.25)]
        assert bottom_right[2:] == [min(centre[0] + SIDE / 2, SIDE), min(centre[1] + SIDE / 2, SIDE)]
        assert SIDE / 4 <= centre[0] <= 3 * SIDE / 4 + 0.25 and SIDE / 4 <= centre[1] <= 3 * SIDE / 4 + 0.25
        inside = _pixels(out)[0, 0, int(centre[1]) - 2 : int(centre[1]) + 2, int(centre[0]) - 2 : int(centre[0]) + 2]
        torch.testing.assert_close(inside, torch.full_like(inside, 0.1))  # the image, not the fill, at the centre


def test_mosaic_boxes_frame_exactly_the_pixels_of_their_image():
    images, target = _painted(4)
    augment = _mosaic(affine_scale=[1.0, 1.0], **STILL)  # no resampling: pixels and boxes compare exactly
    out, out_target = augment(images, target, epoch=0, step=0)
    colours = (_pixels(out)[:, 0] * 10).round() - 1  # back to the source image's index; the fill 114 reads 3.5
    for sample, entry in enumerate(out_target):
        covered = torch.zeros(SIDE, SIDE, dtype=torch.long) - 1
        for (x1, y1, x2, y2), label in zip(entry["boxes"].long().tolist(), entry["labels"].tolist(), strict=True):
            assert torch.equal(colours[sample, y1:y2, x1:x2], torch.full((y2 - y1, x2 - x1), float(label)))
            covered[y1:y2, x1:x2] = label
        shown = colours[sample] != 3.0  # fill 114/255 → 3.47 → 3 after rounding: not an image
        assert torch.equal(covered[shown].float(), colours[sample][shown])  # every image pixel has its box


def test_mosaic_with_rotation_shear_and_mixup_keeps_boxes_inside_and_on_their_objects():
    images, _, target = _scene(count=8, box=(8, 8, 24, 24))
    augment = _mosaic(mixup_scale=[0.8, 1.2], fill=0)  # the documented recipe (rotation, shear, shift, mixup)
    for step in range(3):
        out, out_target = augment(images, target, epoch=0, step=step)
        for sample, entry in enumerate(out_target):
            boxes = entry["boxes"]
            assert len(boxes) == len(entry["labels"]) and len(boxes) > 1  # mosaics gather the batch's boxes
            assert (boxes >= 0).all() and (boxes <= SIDE).all() and (boxes[:, 2:] - boxes[:, :2] >= 1).all()
            red = _pixels(out)[sample, 0] > 0.3  # the objects, also at half strength where mixed up
            for x1, y1, x2, y2 in boxes.tolist():  # each box encloses object pixels (rotation makes boxes loose)
                assert red[int(y1) : int(y2) + 1, int(x1) : int(x2) + 1].any()
            outside = torch.ones_like(red)
            for x1, y1, x2, y2 in boxes.tolist():
                outside[max(0, int(y1) - 1) : int(y2) + 2, max(0, int(x1) - 1) : int(x2) + 2] = False
            outside[:2] = outside[-2:] = outside[:, :2] = outside[:, -2:] = False  # slivers the edge cut are dropped
            assert not red[outside].any()  # no object pixel is left without a box


def test_mosaic_probability_and_its_last_epochs_off():
    images, _, target = _scene(count=16)
    out, out_target = _mosaic(mosaic_prob=0.0)(images, target, epoch=0, step=0)
    assert torch.equal(out, images) and out_target == target
    augment = _mosaic(epochs=5, mosaic_off_duration=2, mosaic_prob=1.0, **STILL)
    for epoch, on in [(0, True), (2, True), (3, False), (4, False)]:
        out, _ = augment(images, target, epoch=epoch, step=0)
        assert torch.equal(out, images) is not on
    out, out_target = _mosaic(mosaic_prob=0.5, **STILL)(images, target, epoch=0, step=0)
    changed = sum(not torch.equal(out[i], images[i]) for i in range(16))
    assert 2 < changed < 14


def test_mosaic_is_reproducible_from_the_seed():
    images, _, target = _scene(count=8)
    first, first_target = _mosaic()(images, target, epoch=1, step=3)
    again, again_target = _mosaic()(images, target, epoch=1, step=3)
    assert torch.equal(first, again)
    assert all(torch.equal(a["boxes"], b["boxes"]) for a, b in zip(first_target, again_target, strict=True))
    other, _ = _mosaic()(images, target, epoch=1, step=4)
    assert not torch.equal(first, other)


@pytest.mark.parametrize(
    ("augmentation", "pointer", "message"),
    [
        ("train:\n  - {name: mosaicdetection, size: 24}\n", "/augmentation/train/0/size", "must be [32, 32]"),
        ("train:\n  - {name: mosaicdetection, degrees: -1}\n", "/augmentation/train/0/degrees", "must be >= 0"),
        ("train:\n  - {name: mosaicdetection}\n", "/augmentation/train/0/name", "for detection; not classification"),
        (
            "train:\n  - {name: mixing, mixup: [0.2, 1.0]}\n  - {name: randomhorizontalflip}\n",
            "/augmentation/train/0",
            "must be the last",
        ),
        ("train:\n  - {name: mixing, cutmix: ~}\n", "/augmentation/train/0", "needs mixup"),
        ("train:\n  - {name: mixing, mixup: [0, 1.0]}\n", "/augmentation/train/0/mixup/0", "must be > 0"),
    ],
)
def test_batch_transforms_that_cannot_run_are_located(write_spec, augmentation, pointer, message):
    spec = _spec_with(write_spec, augmentation)
    with pytest.raises(SpecError) as info:
        load_run_config(spec)
    assert (pointer, True) in [(d.pointer, message in d.message) for d in info.value.diagnostics]


DETECTION_MOSAIC = """\
augmentation:
  train:
    - {name: mosaicdetection, mosaic_prob: 0.5, affine_scale: [0.7, 1.3], degrees: 5.0, translate: 0.1, shear: 1.0,
       enable_mixup: true, mixup_prob: 0.5, mixup_scale: [0.8, 1.2], fill: 114, mosaic_off_duration: 1}
    - {name: randomhorizontalflip, p: 0.5}
"""


def test_detection_training_with_mosaic_still_learns(capsys, tmp_path):
    from npc.cli import main

    spec = tmp_path / "spec.yaml"
    text = TASK_SPEC.format(task="detection", head=HEADS["detection"])
    text = (
        text.replace("epochs: 1", "epochs: 4")
        .replace("lr: 0.003}", "lr: 0.01}, scheduler: {name: cosine_no_sgdr, warmup_epochs: 1}")
        .replace("num_train: 16", "num_train: 32")
    )
    spec.write_text(text + DETECTION_MOSAIC)
    code = main(["train", str(spec), "--out", str(tmp_path / "run"), "--no-tensorboard"])
    out, err = capsys.readouterr()
    assert code == 0, out + err
    assert "augmenting each training batch (kornia): mosaicdetection, randomhorizontalflip" in out
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    train_loss, valid_loss = ([float(row[key]) for row in rows] for key in ("train_loss", "valid_loss"))
    assert len(rows) == 4 and train_loss[-1] < train_loss[0] and valid_loss[-1] < valid_loss[0]


# --- mixing ---------------------------------------------------------------------------------------------------


def _mixing(**params):
    resolved, problems = resolve_augmentation(
        {"train": [{"name": "mixing", **params}]}, {"image_size": SIDE}, task="classification"
    )
    assert problems == []
    return build_augmentation(resolved, task="classification", preprocess=PREPROCESS, seed=7, num_classes=5)


def _levels(count: int = 5):
    """Image i is one grey level; its class is i."""
    pixels = torch.stack([torch.full((3, SIDE, SIDE), i / count) for i in range(count)])
    return pixels * 2 - 1, torch.arange(count)


def test_mixup_blends_each_image_with_its_neighbour_by_the_weight_of_its_target():
    images, labels = _levels()
    out, soft = _mixing(mixup=[0.4, 1.0])(images, labels, epoch=0, step=0)
    assert soft.shape == (5, 5) and torch.allclose(soft.sum(dim=1), torch.ones(5))
    weight = soft[0, labels[0]]  # one weight for the batch: sample 0 mixes with sample 4 (the batch rolled by one)
    assert 0 < weight < 1
    for i in range(5):
        expected = weight * _pixels(images)[i] + (1 - weight) * _pixels(images)[i - 1]
        torch.testing.assert_close(_pixels(out)[i], expected)
        assert torch.isclose(soft[i, labels[i]], weight) and torch.isclose(soft[i, labels[i - 1]], 1 - weight)


def test_cutmix_pastes_a_patch_from_the_neighbour_and_weighs_the_target_by_area():
    images, labels = _levels()
    out, soft = _mixing(cutmix=[1.0, 1.0], inplace=True)(images, labels, epoch=0, step=1)
    for i in range(5):
        own = torch.isclose(_pixels(out)[i, 0], _pixels(images)[i, 0, 0, 0]).float().mean()
        assert torch.isclose(soft[i, labels[i]], own) and torch.isclose(soft[i, labels[i - 1]], 1 - own)
    assert (soft.max(dim=1).values < 1).any()  # a patch was pasted


def test_mixing_at_probability_zero_passes_the_batch_and_its_labels():
    images, labels = _levels()
    out, same = _mixing(mixup=[0.4, 0.0], cutmix=[1.0, 0.0])(images, labels, epoch=0, step=0)
    assert torch.equal(out, images) and torch.equal(same, labels)


def test_losses_take_the_class_probabilities_mixing_makes():
    from npc.runtime.losses.build import CrossEntropy, FocalLoss

    logits = {"pred": torch.randn(4, 5)}
    labels = torch.tensor([0, 3, 1, 4])
    one_hot = torch.nn.functional.one_hot(labels, 5).float()
    for loss in (CrossEntropy(label_smoothing=0.1, ignore_index=255), FocalLoss()):
        torch.testing.assert_close(loss(logits, one_hot, (SIDE, SIDE)), loss(logits, labels, (SIDE, SIDE)))


def test_classification_training_with_mixing_still_learns_digits(tmp_path, write_spec, tiny_model_py):
    spec = write_spec(
        "epochs: 2\nbatch_size: 64\nseed: 3\noptimizer: {name: adamw, lr: 0.02}", "format: digits\nimage_size: 16"
    )
    recipe = (
        "train:\n  - {name: colorjitter, brightness: 0.1}\n  - {name: mixing, mixup: [0.2, 0.5], cutmix: [1.0, 0.5]}\n"
    )
    spec.write_text(spec.read_text() + "augmentation:\n" + textwrap.indent(recipe, "  "))
    result = _train(spec, tmp_path / "run", tiny_model_py)
    assert result.best_metric > 0.3  # 10 classes: chance is 0.1 (validation sees plain images and labels)
