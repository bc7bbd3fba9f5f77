"""``npc evaluate`` and ``npc predict``: a model built from the spec (or a run folder's model.py), weights loaded
strictly (every key must match), then metrics over a data split or labels for image files.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader

from ._checkpoint import apply_weights, load_weights
from ._config import RunConfig
from ._data import Preprocess, build_data
from ._errors import EXIT_USAGE, DataError, RunError
from ._load_model import build, import_model, model_source
from ._losses import build_loss
from ._metrics import evaluate
from ._train import resolve_device

__all__ = ["Loaded", "evaluate_weights", "load_for_inference", "predict_images"]


@dataclass
class Loaded:
    model: nn.Module
    num_classes: int
    class_names: list[str]
    preprocess: Preprocess | None
    metadata: dict[str, Any]
    device: torch.device


def load_for_inference(
    config: RunConfig,
    weights: str | Path,
    *,
    model_py: str | Path | None,
    device: str | None,
    num_classes: int | None,
    class_names: list[str] | None = None,
    preloaded: tuple[dict[str, torch.Tensor], dict[str, Any]] | None = None,
) -> Loaded:
    """Build the model for ``num_classes`` (else the class count the weights record) and load them strictly."""
    state, metadata = preloaded or load_weights(weights)
    recorded = metadata.get("num_classes")
    if num_classes is None:
        num_classes = recorded
    if num_classes is None:
        raise RunError(
            f"{weights}: records no class count (not written by npc train); give the data with --data", EXIT_USAGE
        )
    if recorded is not None and recorded != num_classes:
        raise RunError(f"{weights}: was trained for {recorded} classes, but the data has {num_classes}")
    with tempfile.TemporaryDirectory(prefix="npc-model-") as folder:
        path = Path(model_py) if model_py is not None else Path(folder) / "model.py"
        if model_py is None:
            path.write_text(model_source(config, None), encoding="utf-8")
        module = import_model(path)
        model = build(module, num_classes, path)
    apply_weights(model, state, weights, strict=True)
    target = resolve_device(device)
    model.to(target).eval()
    names = class_names or metadata.get("class_names") or [str(i) for i in range(num_classes)]
    preprocess = Preprocess.from_json(metadata["preprocess"]) if "preprocess" in metadata else None
    return Loaded(model, num_classes, list(names), preprocess, metadata, target)


def evaluate_weights(
    config: RunConfig,
    weights: str | Path,
    *,
    split: str = "valid",
    model_py: str | Path | None = None,
    device: str | None = None,
    batch_size: int | None = None,
) -> dict[str, Any]:
    data = build_data(config.data, (split,))
    loaded = load_for_inference(
        config, weights, model_py=model_py, device=device, num_classes=data.num_classes, class_names=data.class_names
    )
    if loaded.preprocess is not None and loaded.preprocess != data.preprocess:
        data.notes.append(
            f"the weights were trained with other preprocessing ({loaded.preprocess}); evaluating with the data's"
        )
    loss_fn, _ = build_loss(config.spec.losses, config.spec_source)
    loader = DataLoader(data.splits[split], batch_size=batch_size or config.training["batch_size"], shuffle=False)
    metrics = evaluate(loaded.model, loader, loss_fn.to(loaded.device), data.num_classes, loaded.device)
    return {
        "weights": str(weights),
        "data": data.description,
        "split": split,
        "num_classes": data.num_classes,
        **metrics,
        "notes": data.notes,
    }


@torch.no_grad()
def predict_images(
    config: RunConfig,
    weights: str | Path,
    images: list[str],
    *,
    model_py: str | Path | None = None,
    device: str | None = None,
    top_k: int = 1,
    use_data: bool = False,
) -> list[dict[str, Any]]:
    """One record per image: best label, its softmax score, and the ``top_k`` best (label, score) pairs."""
    num_classes = names = preprocess = None
    state, metadata = load_weights(weights)
    if use_data or "num_classes" not in metadata or "preprocess" not in metadata:
        data = build_data(config.data, ("valid",))
        num_classes, names, preprocess = data.num_classes, data.class_names, data.preprocess
    loaded = load_for_inference(
        config,
        weights,
        model_py=model_py,
        device=device,
        num_classes=num_classes,
        class_names=names,
        preloaded=(state, metadata),
    )
    preprocess = preprocess or loaded.preprocess
    out = []
    for image in images:
        if not Path(image).is_file():
            raise DataError(f"{image}: image not found", EXIT_USAGE)
        x = preprocess.image(image).unsqueeze(0).to(loaded.device)
        probs = torch.softmax(loaded.model(x)["pred"].float(), dim=-1)[0]
        scores, indices = probs.topk(min(top_k, loaded.num_classes))
        ranked = [
            {"index": int(i), "label": loaded.class_names[int(i)], "score": float(s)} for s, i in zip(scores, indices)
        ]
        out.append({"image": image, **ranked[0], "top_k": ranked})
    return out
