"""Small data sets in NetsPresso Trainer's local layouts, and the six config files both tools read, for
``bench/train_e2e.py``.

Layouts (what the peer's local samplers read, and npc's ``format: local`` readers too):

- classification: ``images/{train,valid}/*.png`` + ``labels/{train,valid}.csv`` (``image_id,class``; the class is
  the integer index the peer's ``int(row['class'])`` wants) + ``id_mapping.json`` (a list of names)
- detection: ``images/{split}/NAME.png`` + ``labels/{split}/NAME.txt`` (YOLO: ``class cx cy w h``, normalised)
- segmentation: ``images/{split}/NAME.png`` + ``labels/{split}/NAME.png`` (mode ``L``: the class index per pixel)
- pose_estimation: ``images/{split}/NAME.png`` + ``labels/{split}/NAME.txt`` (one person per line:
  ``x1 y1 v1 ... xK yK vK bx1 by1 bx2 by2``, image pixels) + ``id_mapping.json`` (the peer's ``{name, swap}`` list)

Needs numpy and Pillow (scikit-learn for the digits); the shapes come from npc's own generator, so the same
(count, size, seed) always gives the same files. Nothing here imports torch or the peer.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

SPLIT_SEED = 0
SHAPES_SEED = {"train": 11, "valid": 12}


@dataclass(frozen=True)
class Recipe:
    """One task's data set and the five non-data files (the data file is written next to the set)."""

    name: str
    task: str
    model: str  # the model YAML text (the peer's published file, without pretrained weights)
    size: int
    train: int
    valid: int
    epochs: int
    batch_size: int = 32
    lr: float = 1e-3


def _png(path: Path, pixels: np.ndarray, mode: str | None = None) -> None:
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels, mode=mode).save(path) if mode else Image.fromarray(pixels).save(path)


def write_digits(root: Path, size: int = 64, train: int = 1437, valid: int | None = None) -> dict[str, int]:
    """scikit-learn's 1,797 digits as ``size``-pixel RGB PNGs (bilinear from 8x8): ``train`` for training, the rest
    (or ``valid`` of them) for validation, split by a fixed permutation. Returns the image count per split."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    order = np.random.RandomState(SPLIT_SEED).permutation(len(digits.images))
    parts = {"train": order[:train], "valid": order[train:][:valid]}
    (root / "labels").mkdir(parents=True, exist_ok=True)
    for split, indices in parts.items():
        rows = []
        for n, index in enumerate(indices):
            grey = (digits.images[index] * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
            big = np.asarray(Image.fromarray(grey, mode="L").resize((size, size), Image.Resampling.BILINEAR))
            name = f"{n:05d}.png"
            _png(root / "images" / split / name, np.repeat(big[:, :, None], 3, axis=2))
            rows.append(f"{name},{int(digits.target[index])}")
        (root / "labels" / f"{split}.csv").write_text("image_id,class\n" + "\n".join(rows) + "\n")
    (root / "id_mapping.json").write_text(json.dumps([str(i) for i in range(10)]))
    return {split: len(indices) for split, indices in parts.items()}


def _shapes_module():
    """npc's shapes generator: the restructured runtime (``runtime/data/shapes.py``) or the flat one."""
    try:
        from npc.runtime.data import shapes
    except ImportError:
        from npc.runtime import _shapes as shapes
    return shapes


def _shapes(count: int, size: int, split: str):
    return _shapes_module().generate_shapes(count, size, SHAPES_SEED[split])


def write_shapes_detection(root: Path, size: int = 128, train: int = 200, valid: int = 50) -> dict[str, int]:
    """npc's generated shapes (circles, squares, triangles) as PNGs with YOLO txt labels."""
    names = _shapes_module().SHAPE_NAMES

    counts = {"train": train, "valid": valid}
    for split, count in counts.items():
        shapes = _shapes(count, size, split)
        for i in range(count):
            name = f"{i:06d}"
            _png(root / "images" / split / f"{name}.png", shapes.images[i])
            lines = []
            for (x1, y1, x2, y2), label in zip(shapes.boxes[i], shapes.labels[i], strict=True):
                cx, cy, w, h = (x1 + x2) / 2 / size, (y1 + y2) / 2 / size, (x2 - x1) / size, (y2 - y1) / size
                lines.append(f"{int(label)} {cx:.6f} {cy:.6f} {w:.6f} {h:.6f}")
            label_file = root / "labels" / split / f"{name}.txt"
            label_file.parent.mkdir(parents=True, exist_ok=True)
            label_file.write_text("\n".join(lines) + "\n")
    (root / "id_mapping.json").write_text(json.dumps(list(names)))
    return counts


def write_shapes_segmentation(root: Path, size: int = 64, train: int = 200, valid: int = 50) -> dict[str, int]:
    """The same shapes with ``L`` masks: 0 background, 1 + class inside a shape."""
    names = _shapes_module().SHAPE_NAMES

    counts = {"train": train, "valid": valid}
    for split, count in counts.items():
        shapes = _shapes(count, size, split)
        for i in range(count):
            _png(root / "images" / split / f"{i:06d}.png", shapes.images[i])
            _png(root / "labels" / split / f"{i:06d}.png", shapes.masks[i], mode="L")
    (root / "id_mapping.json").write_text(json.dumps(["background", *names]))
    return counts


def write_stick_figures(root: Path, size: int = 256, train: int = 96, valid: int = 32) -> dict[str, int]:
    """npc's built-in stick figures (7 keypoints, left and right limbs in their own colours) as PNGs with one
    person per image, its box the figure's keypoints' bounds plus a margin."""
    pose = __import__("npc.runtime.data.pose", fromlist=["draw_figure"])
    counts = {"train": train, "valid": valid}
    for split, count in counts.items():
        for i in range(count):
            rng = np.random.RandomState(pose.figure_seed(SHAPES_SEED[split], split, i))
            pixels, keypoints = pose.draw_figure(rng, size, size)
            _png(root / "images" / split / f"{i:06d}.png", pixels)
            low, high = keypoints[:, :2].min(0) - 0.1 * size, keypoints[:, :2].max(0) + 0.1 * size
            box = [*np.clip(low, 0, size - 1), *np.clip(high, 0, size - 1)]
            label = root / "labels" / split / f"{i:06d}.txt"
            label.parent.mkdir(parents=True, exist_ok=True)
            label.write_text(" ".join(f"{v:.2f}" for v in [*keypoints.flatten(), *box]) + "\n")
    names = pose.FIGURE_KEYPOINTS
    mapping = [{"name": name, "swap": names[twin]} for name, twin in zip(names, pose.FIGURE_SWAP, strict=True)]
    (root / "id_mapping.json").write_text(json.dumps(mapping))
    return counts


# --- the six files -------------------------------------------------------------------------------------------------

RESNET18 = """\
model:
  task: classification
  name: resnet18
  checkpoint: {use_pretrained: False, load_head: False, path: ~, optimizer_path: ~}
  freeze_backbone: False
  architecture:
    full: ~
    backbone:
      name: resnet
      params: {block_type: basicblock, norm_type: batch_norm, return_stage_idx: ~, split_stem_conv: False,
               first_stage_shortcut_conv: False}
      stage_params:
        - {channels: 64, num_blocks: 2}
        - {channels: 128, num_blocks: 2, replace_stride_with_dilation: False, replace_stride_with_pooling: False}
        - {channels: 256, num_blocks: 2, replace_stride_with_dilation: False, replace_stride_with_pooling: False}
        - {channels: 512, num_blocks: 2, replace_stride_with_dilation: False, replace_stride_with_pooling: False}
    head:
      name: fc
      params: {num_layers: 1, intermediate_channels: ~, act_type: ~, dropout_prob: 0.}
  postprocessor: ~
  losses:
    - {criterion: cross_entropy, label_smoothing: 0.1, weight: ~}
"""

YOLOX_NANO = """\
model:
  task: detection
  name: yolox_nano
  checkpoint: {use_pretrained: False, load_head: False, path: ~, optimizer_path: ~}
  freeze_backbone: False
  architecture:
    full: ~
    backbone:
      name: cspdarknet
      params: {depthwise: True, dep_mul: &dep_mul 0.33, wid_mul: 0.25, act_type: &act_type "silu"}
      stage_params: ~
    neck:
      name: yolopafpn
      params: {depthwise: True, dep_mul: *dep_mul, act_type: *act_type}
    head:
      name: anchor_free_decoupled_head
      params: {depthwise: True, act_type: *act_type}
  postprocessor:
    params: {score_thresh: 0.01, nms_thresh: 0.65, class_agnostic: False}
  losses:
    - {criterion: yolox_loss, weight: ~, l1_activate_epoch: 1}
"""

SEGFORMER_B0 = """\
model:
  task: segmentation
  name: segformer_b0
  checkpoint: {use_pretrained: False, load_head: False, path: ~, optimizer_path: ~}
  freeze_backbone: False
  architecture:
    full: ~
    backbone:
      name: mixtransformer
      params: {ffn_intermediate_expansion_ratio: 4, ffn_act_type: "gelu", ffn_dropout_prob: 0.0,
               attention_dropout_prob: 0.0}
      stage_params:
        - {num_blocks: 2, sequence_reduction_ratio: 8, attention_chananels: 32, embedding_patch_sizes: 7,
           embedding_strides: 4, num_attention_heads: 1}
        - {num_blocks: 2, sequence_reduction_ratio: 4, attention_chananels: 64, embedding_patch_sizes: 3,
           embedding_strides: 2, num_attention_heads: 2}
        - {num_blocks: 2, sequence_reduction_ratio: 2, attention_chananels: 160, embedding_patch_sizes: 3,
           embedding_strides: 2, num_attention_heads: 5}
        - {num_blocks: 2, sequence_reduction_ratio: 1, attention_chananels: 256, embedding_patch_sizes: 3,
           embedding_strides: 2, num_attention_heads: 8}
    head:
      name: all_mlp_decoder
      params: {intermediate_channels: 256, classifier_dropout_prob: 0., resize_output: [SIZE, SIZE]}
  postprocessor: ~
  losses:
    - {criterion: seg_cross_entropy, weight: ~, ignore_index: 255}
"""

RTMPOSE = """\
model:
  task: pose_estimation
  name: rtmpose_mobilenetv3_small
  checkpoint: {use_pretrained: False, load_head: False, path: ~, optimizer_path: ~}
  freeze_backbone: False
  architecture:
    full: ~
    backbone:
      name: mobilenetv3
      params: ~
      stage_params:
        - {in_channels: [16], kernel_sizes: [3], expanded_channels: [16], out_channels: [16], use_se: [True],
           act_type: ["relu"], stride: [2]}
        - {in_channels: [16, 24], kernel_sizes: [3, 3], expanded_channels: [72, 88], out_channels: [24, 24],
           use_se: [False, False], act_type: ["relu", "relu"], stride: [2, 1]}
        - {in_channels: [24, 40, 40, 40, 48], kernel_sizes: [5, 5, 5, 5, 5],
           expanded_channels: [96, 240, 240, 120, 144], out_channels: [40, 40, 40, 48, 48],
           use_se: [True, True, True, True, True],
           act_type: ["hard_swish", "hard_swish", "hard_swish", "hard_swish", "hard_swish"], stride: [2, 1, 1, 1, 1]}
        - {in_channels: [48, 96, 96], kernel_sizes: [5, 5, 5], expanded_channels: [288, 576, 576],
           out_channels: [96, 96, 96], use_se: [True, True, True], act_type: ["hard_swish", "hard_swish", "hard_swish"],
           stride: [2, 1, 1]}
    neck: ~
    head:
      name: rtmcc
      params: {conv_kernel: 7, attention_channels: 256, attention_act_type: 'silu', attention_pos_enc: False, s: 128,
               expansion_factor: 2, dropout_rate: 0., drop_path: 0., use_rel_bias: False, simcc_split_ratio: 2.,
               target_size: [SIZE, SIZE], backbone_stride: 32}
  postprocessor:
    params: {simcc_split_ratio: 2.}
  losses:
    - {criterion: rtmcc_loss, weight: ~}
"""

RECIPES = {
    "classification": Recipe("classification", "classification", RESNET18, 64, 1437, 360, epochs=4),
    "detection": Recipe("detection", "detection", YOLOX_NANO, 128, 200, 50, epochs=5),
    "segmentation": Recipe("segmentation", "segmentation", SEGFORMER_B0, 64, 200, 50, epochs=4),
    # the peer's RTMPose file and pose recipe (flip + posetopdownaffine) at its 256² crops
    "pose_estimation": Recipe("pose", "pose_estimation", RTMPOSE, 256, 96, 32, epochs=3, batch_size=16),
}

NORMALIZE = "{name: normalize, mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225]}"


def _augmentation(recipe: Recipe) -> str:
    s = recipe.size
    if recipe.task == "pose_estimation":
        return _pose_augmentation(s)
    resize = f"{{name: resize, size: [{s}, {s}], interpolation: bilinear, max_size: ~, resize_criteria: ~}}"
    if recipe.task == "classification":
        first = (
            f"{{name: randomresizedcrop, size: {s}, scale: [0.5, 1.0], ratio: [0.75, 1.33], interpolation: bilinear}}"
        )
    else:
        first = resize
    return (
        "augmentation:\n  train:\n"
        f"    - {first}\n"
        "    - {name: randomhorizontalflip, p: 0.5}\n"
        "    - {name: totensor, pixel_range: 1.0}\n"
        f"    - {NORMALIZE}\n"
        "  inference:\n"
        f"    - {resize}\n"
        "    - {name: totensor, pixel_range: 1.0}\n"
        f"    - {NORMALIZE}\n"
    )


def _pose_augmentation(s: int) -> str:
    """The peer's ``augmentation/pose_estimation.yaml``: a flip and the jittered top-down crop; the plain crop."""
    affine = "{name: posetopdownaffine, scale: [%s], scale_prob: %s, translate: %s, translate_prob: %s, rotation: %s, "
    affine += f"rotation_prob: %s, size: [{s}, {s}]}}"
    return (
        "augmentation:\n  train:\n"
        "    - {name: randomhorizontalflip, p: 0.5}\n"
        f"    - {affine % ('0.75, 1.25', 1.0, 0.1, 1.0, 60, 1.0)}\n"
        "    - {name: totensor, pixel_range: 1.0}\n"
        f"    - {NORMALIZE}\n"
        "  inference:\n"
        f"    - {affine % ('1.0, 1.0', 0.0, 0.0, 0.0, 0, 0.0)}\n"
        "    - {name: totensor, pixel_range: 1.0}\n"
        f"    - {NORMALIZE}\n"
    )


def _data(recipe: Recipe, root: Path) -> str:
    if recipe.task == "classification":
        train = "{image: images/train, label: labels/train.csv}"
        valid = "{image: images/valid, label: labels/valid.csv}"
    else:
        train = "{image: images/train, label: labels/train}"
        valid = "{image: images/valid, label: labels/valid}"
    extra = "  label_image_mode: L\n" if recipe.task == "segmentation" else ""
    return (
        f"data:\n  name: {recipe.name}\n  task: {recipe.task}\n  format: local\n  path:\n    root: {root}\n"
        f"    train: {train}\n    valid: {valid}\n    test: {{image: ~, label: ~}}\n"
        "    pattern: {image: ~, label: ~}\n"
        f"{extra}  id_mapping: id_mapping.json\n"
    )


def _training(recipe: Recipe, epochs: int) -> str:
    return (
        "training:\n"
        f"  epochs: {epochs}\n  mixed_precision: False\n  ema: ~\n  max_norm: ~\n"
        f"  optimizer: {{name: adamw, lr: {recipe.lr}, betas: [0.9, 0.999], weight_decay: 0.0005, "
        "no_bias_decay: False, no_norm_weight_decay: False, overwrite: ~}\n"
        "  scheduler: {name: cosine_no_sgdr, warmup_epochs: 1, warmup_bias_lr: 1e-5, min_lr: 0.00001, "
        f"end_epoch: {epochs}}}\n"
    )


def _environment(recipe: Recipe, workers: int, seed: int = 1) -> str:
    return (
        f"environment:\n  seed: {seed}\n"
        f"  num_workers: {workers}\n  gpus: 0\n  batch_size: {recipe.batch_size}\n  cache_data: False\n"
    )


def _logging(recipe: Recipe, output_dir: Path) -> str:
    s = recipe.size
    return (
        "logging:\n  project_id: ~\n"
        f"  output_dir: {output_dir}\n"
        "  tensorboard: true\n  mlflow: false\n  stdout: true\n  num_save_samples: 0\n"
        "  model_save_options:\n    save_optimizer_state: true\n    save_best_only: false\n"
        "    best_model_criterion: loss\n"
        f"    sample_input_size: [{s}, {s}]\n    onnx_export_opset: 13\n"
        "    validation_epoch: &validation_epoch 1\n    save_checkpoint_epoch: *validation_epoch\n"
        "  metrics:\n    classwise_analysis: False\n    metric_names: ~\n"
    )


WRITERS = {
    "classification": lambda r, root: write_digits(root, r.size, r.train, r.valid),
    "detection": lambda r, root: write_shapes_detection(root, r.size, r.train, r.valid),
    "segmentation": lambda r, root: write_shapes_segmentation(root, r.size, r.train, r.valid),
    "pose_estimation": lambda r, root: write_stick_figures(root, r.size, r.train, r.valid),
}


def write_dataset(recipe: Recipe, root: Path) -> dict[str, int]:
    """The recipe's data set under ``root`` (reused when a previous call finished it)."""
    done = root / ".complete"
    if done.is_file():
        return json.loads(done.read_text())
    counts = WRITERS[recipe.task](recipe, root)
    done.write_text(json.dumps(counts))
    return counts


def write_files(
    recipe: Recipe,
    folder: Path,
    data_root: Path,
    output_dir: Path,
    *,
    epochs: int | None = None,
    workers: int = 4,
    seed: int = 1,
) -> dict[str, Path]:
    """The six YAML files in ``folder``; returns name -> path."""
    folder.mkdir(parents=True, exist_ok=True)
    texts = {
        "model": recipe.model.replace("SIZE", str(recipe.size)),
        "data": _data(recipe, data_root),
        "augmentation": _augmentation(recipe),
        "training": _training(recipe, epochs or recipe.epochs),
        "environment": _environment(recipe, workers, seed),
        "logging": _logging(recipe, output_dir),
    }
    files = {}
    for name, text in texts.items():
        files[name] = folder / f"{name}.yaml"
        files[name].write_text(text)
    return files
