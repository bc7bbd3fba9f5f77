"""JSON Schemas of the runtime's spec-file sections, ``training:``, ``data:`` and ``augmentation:`` (draft 2020-12).

Plain data with no imports from npc, so ``schemas/`` can embed them in the model-spec schema (top-level
``training`` and ``data`` keys) without an import cycle, and editors can autocomplete them.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AUGMENTATION_SCHEMA",
    "BEST_MODEL_CRITERIA",
    "DATA_FORMATS",
    "DATA_SCHEMA",
    "EMA_KINDS",
    "HUGGINGFACE_TASKS",
    "ENVIRONMENT_SCHEMA",
    "EVALUATION_KEY",
    "INFERENCE_TRANSFORMS",
    "LABEL_IMAGE_MODES",
    "LOGGING_SCHEMA",
    "OPTIMIZERS",
    "SCHEDULERS",
    "TASKS",
    "TRAINING_SCHEMA",
    "BATCH_TRANSFORMS",
    "KORNIA_TRANSFORMS",
    "TRAIN_TRANSFORMS",
]

OPTIMIZERS = ("adamw", "adam", "adadelta", "adagrad", "rmsprop", "adamax", "sgd")  # NetsPresso's registry
SCHEDULERS = ("cosine", "cosine_no_sgdr", "step", "poly", "multi_step")
EMA_KINDS = ("constant_decay", "exp_decay")
DATA_FORMATS = ("digits", "shapes", "local", "image_folder", "coco", "stick_figures", "huggingface")
HUGGINGFACE_TASKS = ("classification", "segmentation")  # the peer's HUGGINGFACE_DATASET registry
TASKS = ("classification", "segmentation", "detection", "pose_estimation")
LABEL_IMAGE_MODES = ("L", "P", "RGB")
# The resolved data section's evaluation plan, {resize, crop}, read from augmentation.inference (classification);
# npc's own, never in a user's file (resolved.yaml leaves it out: it is read again from the augmentation).
EVALUATION_KEY = "_evaluation"


def _doc(schema: dict[str, Any], text: str) -> dict[str, Any]:
    return {**schema, "description": text}


_POSITIVE = {"type": "number", "exclusiveMinimum": 0}
_NON_NEGATIVE = {"type": "number", "minimum": 0}
_EPOCHS = {"type": "integer", "minimum": 0}
_OPTIONAL_EPOCH = {"type": ["integer", "null"], "minimum": 1}  # null: the default (the whole run)
_BETAS = {
    "type": "array",
    "items": {"type": "number", "minimum": 0, "exclusiveMaximum": 1},
    "minItems": 2,
    "maxItems": 2,
}

# Keys each optimizer accepts besides ``name`` (NetsPresso Trainer's names; all map onto torch.optim).
_OPTIMIZER_KEYS: dict[str, dict[str, Any]] = {
    "adamw": {"lr": _POSITIVE, "betas": _BETAS, "weight_decay": _NON_NEGATIVE, "eps": _POSITIVE},
    "adam": {"lr": _POSITIVE, "betas": _BETAS, "weight_decay": _NON_NEGATIVE, "eps": _POSITIVE},
    "adadelta": {"lr": _POSITIVE, "rho": {"type": "number", "minimum": 0, "maximum": 1}, "weight_decay": _NON_NEGATIVE},
    "adagrad": {"lr": _POSITIVE, "lr_decay": _NON_NEGATIVE, "weight_decay": _NON_NEGATIVE},
    "rmsprop": {
        "lr": _POSITIVE,
        "alpha": _NON_NEGATIVE,
        "momentum": _NON_NEGATIVE,
        "weight_decay": _NON_NEGATIVE,
        "eps": _POSITIVE,
    },
    "adamax": {"lr": _POSITIVE, "betas": _BETAS, "weight_decay": _NON_NEGATIVE},
    "sgd": {
        "lr": _POSITIVE,
        "momentum": _NON_NEGATIVE,
        "weight_decay": _NON_NEGATIVE,
        "nesterov": {"type": "boolean"},
    },
}
_NO_DECAY = {
    "no_bias_decay": _doc({"type": "boolean"}, "no weight decay on parameters named *bias*"),
    "no_norm_weight_decay": _doc({"type": "boolean"}, "no weight decay on parameters named *norm.weight*"),
}
# NetsPresso's overwrite: per model part (backbone, neck, head) its own lr, weight decay and no-decay choices.
_OVERWRITE = _doc(
    {
        "type": ["array", "null"],
        "items": {
            "type": "object",
            "required": ["param_group"],
            "additionalProperties": False,
            "properties": {
                "param_group": {"enum": ["backbone", "neck", "head"]},
                "lr": _POSITIVE,
                "weight_decay": _NON_NEGATIVE,
                **_NO_DECAY,
            },
        },
    },
    "per part of a backbone/neck/head model: its own lr, weight_decay, no_bias_decay, no_norm_weight_decay",
)
_OPTIMIZER_COMMON = {**_NO_DECAY, "overwrite": _OVERWRITE}
_WARMUP = {"warmup_epochs": _EPOCHS, "warmup_bias_lr": _NON_NEGATIVE}
_SCHEDULER_KEYS: dict[str, dict[str, Any]] = {
    "cosine": {
        **_WARMUP,
        "min_lr": _NON_NEGATIVE,
        "iters_per_phase": _doc({"type": ["integer", "null"], "minimum": 0}, "0 or null: a tenth of the run"),
    },
    "cosine_no_sgdr": {**_WARMUP, "min_lr": _NON_NEGATIVE, "end_epoch": _OPTIONAL_EPOCH},
    "poly": {
        **_WARMUP,
        "min_lr": _NON_NEGATIVE,
        "power": _POSITIVE,
        "end_epoch": _OPTIONAL_EPOCH,
    },
    "step": {
        "iters_per_phase": {"type": "integer", "minimum": 1},
        "gamma": _POSITIVE,
        "end_epoch": _OPTIONAL_EPOCH,
    },
    "multi_step": {
        "milestones": {"type": "array", "items": {"type": "integer", "minimum": 1}},
        "gamma": _POSITIVE,
    },
}
_EMA_KEYS: dict[str, dict[str, Any]] = {
    "constant_decay": {"decay": {"type": "number", "minimum": 0, "maximum": 1}},
    "exp_decay": {"decay": {"type": "number", "minimum": 0, "maximum": 1}, "beta": _POSITIVE},
}


def _bare(schema: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in schema.items() if key != "description"}


def _named(
    names: tuple[str, ...], keys: dict[str, dict[str, Any]], *, nullable: bool, common: dict[str, Any] | None = None
) -> dict[str, Any]:
    """An object with a ``name`` from ``names``; each name allows its own keys plus ``common`` (others are errors)."""
    common = common or {}
    all_keys = {"name": {"enum": list(names)}, **common}
    for per_name in keys.values():
        for key, schema in per_name.items():  # a key two names type differently: each name's branch checks it
            known = all_keys.get(key, schema)
            all_keys[key] = known if _bare(known) == _bare(schema) else {}
    branches = [
        {
            "if": {"properties": {"name": {"const": name}}, "required": ["name"]},
            "then": {"properties": {"name": {}, **common, **keys[name]}, "additionalProperties": False},
        }
        for name in names
    ]
    return {
        "type": ["object", "null"] if nullable else "object",
        "required": ["name"],
        "properties": all_keys,
        "allOf": branches,
    }


TRAINING_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "npc training section",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "epochs": _doc({"type": "integer", "minimum": 1}, "number of epochs (default 10)"),
        "batch_size": _doc({"type": "integer", "minimum": 1}, "samples per step (default 64)"),
        "seed": _doc({"type": "integer", "minimum": 0}, "seeds python, numpy, torch and the shuffling (default 1)"),
        "num_workers": _doc(
            {"type": ["integer", "null"], "minimum": 0}, "DataLoader workers; null: 0 in memory, else min(4, CPUs)"
        ),
        "optimizer": _doc(
            _named(OPTIMIZERS, _OPTIMIZER_KEYS, nullable=False, common=_OPTIMIZER_COMMON),
            "torch optimizer by NetsPresso name, with its parameter groups (no_bias_decay, no_norm_weight_decay, "
            "overwrite)",
        ),
        "scheduler": _doc(
            _named(SCHEDULERS, _SCHEDULER_KEYS, nullable=True), "per-epoch learning-rate schedule; null: constant"
        ),
        "ema": _doc(_named(EMA_KINDS, _EMA_KEYS, nullable=True), "exponential moving average of the weights"),
        "max_norm": _doc({"type": ["number", "null"], "exclusiveMinimum": 0}, "gradient clipping by global norm"),
        "mixed_precision": _doc(
            {"enum": [False, True, "float16", "bfloat16"]},
            "autocast the forward pass: true is float16 with a gradient scaler on CUDA, bfloat16 on CPU "
            "(CPU autocast has no float16); default false",
        ),
        "channels_last": _doc(
            {"type": "boolean"},
            "train the model in channels-last (NHWC) memory format: 0.7x the step time of yolox-nano on a CPU, slower "
            "on resnet18 at 64x64 (docs/benchmarks.md); the same arithmetic, so the metric is unchanged within float "
            "rounding; default false",
        ),
        "fused_optimizer": _doc(
            {"type": "boolean"},
            "step adam, adamw, sgd and adagrad with torch's fused kernel instead of its per-tensor Python loop: the "
            "same update rule, float rounding aside, and a resnet18 AdamW step ~10x faster on a CPU "
            "(docs/benchmarks.md); the other optimizers have no fused kernel; default true",
        ),
        "sync_bn": _doc(
            {"type": "boolean"},
            "torchrun on GPUs: BatchNorm statistics over the global batch (SyncBatchNorm); default false",
        ),
        "checkpoint_every": _doc(
            {
                "type": ["object", "null"],
                "additionalProperties": False,
                "minProperties": 1,
                "properties": {
                    "steps": {"type": "integer", "minimum": 1},
                    "minutes": {"type": "number", "exclusiveMinimum": 0},
                },
            },
            "also save training_state.pt mid-epoch, every N optimiser steps and/or M minutes (whichever comes "
            "first), so a killed run loses at most that much work; null (default): at epoch ends only",
        ),
        "on_nonfinite": _doc(
            {"enum": ["stop", "skip"]},
            "a NaN or infinite loss: stop (default; names epoch, step, loss term and the last good checkpoint) or "
            "skip the step (counted; the run stops after max_consecutive_nonfinite skips in a row)",
        ),
        "max_consecutive_nonfinite": _doc(
            {"type": "integer", "minimum": 1}, "on_nonfinite: skip stops after this many skipped steps in a row (10)"
        ),
    },
}

_SPLIT = {
    "type": ["object", "null"],
    "additionalProperties": False,
    "properties": {"image": {"type": ["string", "null"]}, "label": {"type": ["string", "null"]}},
}
_COLUMN = {"type": "string", "minLength": 1}
_HUGGINGFACE = _doc(
    {
        "type": "object",
        "additionalProperties": False,
        "required": ["repo", "features"],
        "properties": {
            "custom_cache_dir": _doc(
                {"type": ["string", "null"]}, "where load_dataset caches what it downloads (null: datasets' default)"
            ),
            "repo": _doc(
                {"type": "string", "minLength": 1},
                "a local folder (save_to_disk output, or data files load_dataset reads) or a Hub id (needs network, "
                "or its files already in the cache with HF_DATASETS_OFFLINE=1)",
            ),
            "subset": _doc({"type": ["string", "null"]}, "the dataset's configuration name (load_dataset's name)"),
            "features": {
                "type": "object",
                "additionalProperties": False,
                "required": ["image", "label"],
                "properties": {
                    "image": _doc(_COLUMN, "the column holding the images"),
                    "label": _doc(_COLUMN, "the column holding the class (classification) or the mask (segmentation)"),
                },
            },
            "id_mapping": _doc(
                {"type": ["array", "object", "null"]},
                "the peer's segmentation template writes id_mapping here; read as data.id_mapping",
            ),
        },
    },
    "format huggingface: NetsPresso's keys naming the dataset and its image and label columns",
)
DATA_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "npc data section",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": ["string", "null"]},
        "task": _doc({"enum": list(TASKS)}, "optional; must be the spec's model.task"),
        "format": _doc(
            {"enum": list(DATA_FORMATS)},
            "digits / shapes / stick_figures (built in), local (NetsPresso layout: CSV, PNG masks, YOLO txt or "
            "keypoint txt by task), "
            "image_folder (class folders), coco (detection: one COCO JSON per split), huggingface (a Hugging Face "
            "dataset named by metadata: classification and segmentation)",
        ),
        "metadata": _HUGGINGFACE,
        "path": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "root": {"type": ["string", "null"]},
                "train": _SPLIT,
                "valid": _SPLIT,
                "test": _SPLIT,
                "pattern": _doc(
                    {
                        "type": ["object", "null"],
                        "additionalProperties": False,
                        "properties": {"image": {"type": "null"}, "label": {"type": "null"}},
                    },
                    "NetsPresso's file-name patterns: null only (npc pairs images and labels by file name)",
                ),
            },
        },
        "pallete": _doc({"type": "null"}, "NetsPresso's (sic) mask palette: null only (RGB masks: id_mapping colours)"),
        "id_mapping": {
            "anyOf": [
                {"type": "null"},
                _doc({"type": "string"}, "a JSON file under path.root holding the list (pose: the keypoints)"),
                _doc(
                    {"type": "array", "items": {"type": "object", "required": ["name"]}, "minItems": 1},
                    "pose: keypoints as NetsPresso writes them, [{name, swap, ...}, ...]",
                ),
                {"type": "array", "items": {"type": ["string", "integer"]}, "minItems": 1},
                {"type": "object", "additionalProperties": {"type": ["string", "integer"]}, "minProperties": 1},
            ]
        },
        "label_image_mode": _doc(
            {"enum": list(LABEL_IMAGE_MODES)},
            "segmentation masks: L (grey values are class ids, default), P or RGB (colours mapped by id_mapping)",
        ),
        "num_train": _doc(
            {"type": "integer", "minimum": 1}, "shapes, stick_figures: generated train images (default 512)"
        ),
        "num_valid": _doc(
            {"type": "integer", "minimum": 1}, "shapes, stick_figures: generated valid/test images (default 128)"
        ),
        "max_shapes": _doc({"type": "integer", "minimum": 1, "maximum": 8}, "shapes: objects per image, 1..N"),
        "seed": _doc(
            {"type": "integer", "minimum": 0}, "shapes, stick_figures: generator seed (default 0; not training.seed)"
        ),
        "num_classes": _doc({"type": "integer", "minimum": 1}, "optional; must match the classes found"),
        "on_bad_sample": _doc(
            {"enum": ["error", "skip"]},
            "a corrupt image, a mask of the wrong size, a box outside its image, an unknown label: error (default; "
            "stop, naming the file) or skip (leave it out and count it); npc train/evaluate --on-bad-sample",
        ),
        "input_size": _doc(
            {"type": "array", "items": {"type": "integer", "minimum": 8}, "minItems": 2, "maxItems": 2},
            "pose: (height, width) of the crops; default: the rtmcc head's target_size",
        ),
        "image_size": _doc({"type": "integer", "minimum": 8, "maximum": 4096}, "square input side (default 224)"),
        "mean": {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3},
        "std": {"type": "array", "items": _POSITIVE, "minItems": 3, "maxItems": 3},
    },
}

# --- augmentation ----------------------------------------------------------------------------------------------

# NetsPresso Trainer's transform names, every one of its registry's (kornia, plus npc's own batch steps; see
# runtime/data/augment.py).
KORNIA_TRANSFORMS = (  # kornia modules
    "randomresizedcrop",
    "randomcrop",
    "centercrop",
    "resize",
    "pad",
    "randomhorizontalflip",
    "randomverticalflip",
    "colorjitter",
    "randomerasing",
)
BATCH_TRANSFORMS = (  # npc's own batch steps
    "mosaicdetection",
    "hsvjitter",
    "randomresize",
    "randomzoomout",
    "randomioucrop",
    "randomresize2",
    "trivialaugmentwide",
    "autoaugment",
    "posetopdownaffine",
    "mixing",
)
TRAIN_TRANSFORMS = (*KORNIA_TRANSFORMS, *BATCH_TRANSFORMS, "totensor", "normalize")
# Evaluation is never augmented: an inference list may only restate npc's own preprocessing.
INFERENCE_TRANSFORMS = (  # each must keep the input size (posetopdownaffine: restate the loader's crop)
    "resize",
    "pad",
    "centercrop",
    "posetopdownaffine",
    "totensor",
    "normalize",
)
AUTOAUGMENT_POLICIES = ("imagenet", "cifar10", "svhn")  # torchvision's AutoAugmentPolicy values
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")

_PROBABILITY = {"type": "number", "minimum": 0, "maximum": 1}
_SIDE = {"type": "integer", "minimum": 1}
# NetsPresso: an int (square), [side] or [height, width]; npc: omitted means data.image_size. (Bounds on a
# multi-type schema apply to their own type only, so no anyOf is needed and errors stay specific.)
_SIZE = {"type": ["integer", "array"], "minimum": 1, "items": _SIDE, "minItems": 1, "maxItems": 2}
_RANGE = {"type": "array", "items": _POSITIVE, "minItems": 2, "maxItems": 2}
_PIXEL = {"type": "integer", "minimum": 0, "maximum": 255}  # in 0..255 units, as NetsPresso's PIL images
_JITTER = {"type": ["number", "array"], "minimum": 0, "items": _NON_NEGATIVE, "minItems": 2, "maxItems": 2}
_HUE = {
    "type": ["number", "array"],
    "minimum": 0,
    "maximum": 0.5,
    "items": {"type": "number", "minimum": -0.5, "maximum": 0.5},
    "minItems": 2,
    "maxItems": 2,
}
_TRIPLE = {"type": "array", "items": {"type": "number"}, "minItems": 3, "maxItems": 3}
_FILL = _doc(
    {"type": ["integer", "array", "null"], "minimum": 0, "maximum": 255, "items": _PIXEL, "minItems": 3, "maxItems": 3},
    "fill of the area a geometric op uncovers, 0..255 (one value or R, G, B); null: black",
)
_SCALE_FRACTION = {"type": "number", "exclusiveMinimum": 0, "maximum": 1}
_SPREAD = {"type": ["number", "array"], "minimum": 0, "items": {"type": "number"}, "minItems": 2, "maxItems": 2}
_ALPHA_AND_P = _doc(
    {"type": ["array", "null"], "prefixItems": [_POSITIVE, _PROBABILITY], "minItems": 2, "maxItems": 2},
    "[alpha, probability per batch]; null: off",
)
_TRANSFORM_KEYS: dict[str, dict[str, Any]] = {
    "randomresizedcrop": {
        "size": _SIZE,
        "scale": _RANGE,
        "ratio": _RANGE,
        "interpolation": {"enum": list(INTERPOLATIONS)},
    },
    "randomcrop": {"size": _SIZE, "fill": _PIXEL},
    "centercrop": {"size": _SIZE},
    "resize": {
        "size": _SIZE,
        "interpolation": {"enum": list(INTERPOLATIONS)},
        "max_size": _doc({"type": "null"}, "not supported by npc: null only"),
        "resize_criteria": {"enum": ["short", "long", None]},
    },
    "pad": {"size": _SIZE, "fill": _PIXEL},
    "randomhorizontalflip": {"p": _PROBABILITY},
    "randomverticalflip": {"p": _PROBABILITY},
    "colorjitter": {
        "brightness": _JITTER,
        "contrast": _JITTER,
        "saturation": _JITTER,
        "hue": _HUE,
        "p": _PROBABILITY,
    },
    "randomerasing": {
        "p": _PROBABILITY,
        "scale": _RANGE,
        "ratio": _RANGE,
        "value": _doc(_PIXEL, "erasing value in 0..255 (NetsPresso's null, random noise, is not supported)"),
        "inplace": {"type": "boolean"},
    },
    "mosaicdetection": {
        "size": _SIZE,  # must be the size at this point: checked in _config (npc mosaics batches of one size)
        "mosaic_prob": _PROBABILITY,
        "affine_scale": _doc(_RANGE, "[min, max] scale of the affine step"),
        "degrees": _doc(_SPREAD, "rotation: d means [-d, d] degrees, or [min, max]"),
        "translate": _doc(_SPREAD, "shift: t means [-t, t] times the output size, or [min, max]"),
        "shear": _doc(_SPREAD, "shear: s means [-s, s] degrees on each axis, or [min, max]"),
        "enable_mixup": {"type": "boolean"},
        "mixup_prob": _PROBABILITY,
        "mixup_scale": _doc(_RANGE, "[min, max] scale of the image mixed in"),
        "fill": _PIXEL,
        "mosaic_off_duration": _doc({"type": "integer", "minimum": 0}, "no mosaic in the last this many epochs"),
    },
    "mixing": {"mixup": _ALPHA_AND_P, "cutmix": _ALPHA_AND_P, "inplace": {"type": "boolean"}},
    "hsvjitter": {
        "h_mag": _doc({"type": "integer", "minimum": 0, "maximum": 180}, "hue shift bound, OpenCV units (0..180)"),
        "s_mag": _doc({"type": "integer", "minimum": 0, "maximum": 255}, "saturation shift bound (0..255)"),
        "v_mag": _doc({"type": "integer", "minimum": 0, "maximum": 255}, "value shift bound (0..255)"),
    },
    "randomzoomout": {
        "fill": _PIXEL,
        "side_range": _doc(
            {"type": "array", "items": {"type": "number", "minimum": 1}, "minItems": 2, "maxItems": 2},
            "[min, max] canvas side as a multiple of the image's (>= 1)",
        ),
        "p": _PROBABILITY,
    },
    "randomresize": {
        "base_size": _SIZE,
        "stride": _doc(_SIDE, "sizes are base_size + stride * k"),
        "random_range": _doc({"type": "integer", "minimum": 0}, "k is drawn from [-random_range, random_range]"),
        "interpolation": {"enum": list(INTERPOLATIONS)},
    },
    "randomioucrop": {
        "min_scale": _doc(_SCALE_FRACTION, "smallest crop side, as a fraction of the image's"),
        "max_scale": _doc(_SCALE_FRACTION, "largest crop side, as a fraction of the image's"),
        "min_aspect_ratio": _doc(_POSITIVE, "smallest crop width / height"),
        "max_aspect_ratio": _doc(_POSITIVE, "largest crop width / height"),
        "p": _PROBABILITY,
        "sampler_options": _doc(
            {"type": ["array", "null"], "items": {"type": "number", "minimum": 0, "maximum": 1}, "minItems": 1},
            "minimum IoU choices (1.0: leave the image); null: [0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 1.0]",
        ),
        "trials": _doc({"type": "integer", "minimum": 1}, "crops tried per IoU choice"),
    },
    "randomresize2": {
        "base_size": _doc(_SIZE, "[height, width] the random factor scales; default: the size at this point"),
        "random_range": _doc(_RANGE, "[min, max] scale factor, drawn per image"),
        "interpolation": {"enum": list(INTERPOLATIONS)},
    },
    "trivialaugmentwide": {
        "num_magnitude_bins": _doc({"type": "integer", "minimum": 2}, "magnitude steps of each op"),
        "interpolation": {"enum": list(INTERPOLATIONS)},
        "fill": _FILL,
    },
    "autoaugment": {
        "policy": _doc({"enum": list(AUTOAUGMENT_POLICIES)}, "the searched policy (torchvision's)"),
        "interpolation": {"enum": list(INTERPOLATIONS)},
        "fill": _FILL,
    },
    "posetopdownaffine": {
        "scale": _doc(_RANGE, "[min, max] scale of the person's box (above 1: zoom out)"),
        "scale_prob": _PROBABILITY,
        "translate": _doc(_NON_NEGATIVE, "shift of the box centre, up to this fraction of the box"),
        "translate_prob": _PROBABILITY,
        "rotation": _doc(_NON_NEGATIVE, "rotation up to this many degrees either way"),
        "rotation_prob": _PROBABILITY,
        "size": _doc(_SIZE, "[width, height] of the crop (OpenCV's order, as NetsPresso's): data.input_size's"),
    },
    "totensor": {"pixel_range": _doc({"const": 1.0}, "npc feeds the model pixels in 0..1 before normalising")},
    "normalize": {"mean": _TRIPLE, "std": _TRIPLE},
}


def _transform_list(names: tuple[str, ...], text: str) -> dict[str, Any]:
    keys = {name: _TRANSFORM_KEYS[name] for name in names}
    return _doc({"type": ["array", "null"], "items": _named(names, keys, nullable=False)}, text)


AUGMENTATION_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "npc augmentation section",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "img_size": _doc({"type": "integer", "minimum": 8}, "NetsPresso's final input size; must be data.image_size"),
        "train": _transform_list(
            TRAIN_TRANSFORMS, "applied in order to each training batch on the device (NetsPresso names and keys)"
        ),
        "inference": _transform_list(
            INFERENCE_TRANSFORMS,
            "evaluation is never augmented: the list may only restate npc's own preprocessing (every step keeps "
            "the input size)",
        ),
    },
}

# --- environment and logging (NetsPresso Trainer's environment.yaml and logging.yaml) ----------------------------

ENVIRONMENT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "npc environment section (NetsPresso Trainer's environment.yaml)",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "seed": _doc({"type": "integer", "minimum": 0}, "training.seed"),
        "num_workers": _doc({"type": ["integer", "null"], "minimum": 0}, "training.num_workers"),
        "gpus": _doc(
            {"type": ["integer", "string", "null"], "minimum": 0},
            "GPU index, or indices as '0, 1, 2': one runs on that GPU (CPU when there is none); more than one "
            "needs torchrun, one process per GPU",
        ),
        "batch_size": _doc({"type": "integer", "minimum": 1}, "training.batch_size (per GPU, as NetsPresso)"),
        "cache_data": _doc({"type": "boolean"}, "keep every decoded, resized image in memory after the first read"),
    },
}

BEST_MODEL_CRITERIA = ("loss", "metric")
_SAVE_OPTIONS = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "save_optimizer_state": _doc({"type": "boolean"}, "false: no training_state.pt (the run cannot resume)"),
        "save_best_only": _doc({"type": "boolean"}, "false: also epoch_N.safetensors every save_checkpoint_epoch"),
        "best_model_criterion": _doc(
            {"enum": list(BEST_MODEL_CRITERIA)}, "best.safetensors: lowest valid loss, or the task's metric"
        ),
        "sample_input_size": _doc(
            {"type": ["array", "null"], "items": _SIDE, "minItems": 2, "maxItems": 2},
            "input (height, width) of the export",
        ),
        "onnx_export_opset": _doc({"type": ["integer", "null"], "minimum": 7}, "ONNX opset of the export at the end"),
        "validation_epoch": _doc({"type": "integer", "minimum": 1}, "validate every N epochs (and the last)"),
        "save_checkpoint_epoch": _doc(
            {"type": ["integer", "null"], "minimum": 1},
            "epoch_N.safetensors every N epochs (a multiple of validation_epoch)",
        ),
    },
}
LOGGING_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "npc logging section (NetsPresso Trainer's logging.yaml)",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "project_id": _doc({"type": ["string", "null"]}, "run folder name under output_dir"),
        "output_dir": _doc({"type": "string"}, "where new run folders go when --out is not given"),
        "tensorboard": _doc({"type": "boolean"}, "write tb/ (npc train --no-tensorboard wins)"),
        "mlflow": {"type": "boolean"},
        "stdout": _doc({"type": "boolean"}, "false: print nothing but errors"),
        "num_save_samples": _doc({"type": ["integer", "null"], "minimum": 0}, "validation images drawn at the end"),
        "model_save_options": _SAVE_OPTIONS,
        "metrics": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "classwise_analysis": {"type": "boolean"},
                "metric_names": {"type": ["array", "null"], "items": {"type": "string"}},
            },
        },
    },
}
