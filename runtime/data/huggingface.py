"""Hugging Face datasets (``data.format: huggingface``), read with the ``datasets`` library under NetsPresso
Trainer's keys::

    data:
      format: huggingface
      metadata:
        custom_cache_dir: ./data/huggingface   # load_dataset's cache_dir (null: the library's default)
        repo: beans                            # a local folder, or a Hub id
        subset: ~                              # load_dataset's name (the dataset's configuration)
        features: {image: image, label: labels}

``repo`` is, in this order: a folder written by ``save_to_disk`` (read with ``load_from_disk``, nothing copied);
any other local folder, read by ``load_dataset`` (data files such as parquet or an image folder); else a Hub id,
which ``load_dataset`` downloads (network, or the files already in ``custom_cache_dir`` with
``HF_DATASETS_OFFLINE=1``). Relative folders start at the current folder, as ``load_dataset``'s do.

Splits are the peer's: ``train`` (required), ``validation`` (else npc's fixed holdout of train, where the peer
splits 90:10 at random) and ``test``. Classification: the label column is a ``ClassLabel`` (its names are the
classes), integers (classes 0..max, named by ``id_mapping`` if given) or strings (sorted, or ``id_mapping``'s
order). Segmentation: the label column holds masks, read as the local layout reads mask files (``label_image_mode``
and ``id_mapping``). The peer has no Hugging Face reader for detection or pose; neither has npc (refused where the
data file says ``format``).

Labels (and masks) are checked when the data is built, under ``data.on_bad_sample`` like files; an image that does
not decode when a batch reads it is an :class:`UnreadableFileError` naming ``repo[split][row]``.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from ..errors import UNUSABLE, DataError
from .bad_samples import BadSamples, SampleError, UnreadableFileError
from .common import DataBundle, Preprocess, holdout_split, open_image, pil_module

__all__ = ["HF_SPLITS", "build_huggingface"]

HF_SPLITS = {"train": "train", "valid": "validation", "test": "test"}  # npc's split name -> the dataset's
_DISK_MARKERS = ("dataset_dict.json", "state.json")  # what save_to_disk writes (a DatasetDict, or one Dataset)


def build_huggingface(config: dict[str, Any], splits: Sequence[str], task: str) -> DataBundle:
    metadata = config.get("metadata") or {}
    repo = str(metadata.get("repo") or "")
    features = metadata.get("features") or {}
    image_column, label_column = features.get("image"), features.get("label")
    if not repo or not image_column or not label_column:
        raise DataError("data.metadata: format huggingface needs repo and features: {image, label}")
    loaded = _load(metadata, repo)
    if "train" not in loaded:
        raise DataError(f"data.metadata.repo: {repo} has no 'train' split (it has: {', '.join(loaded) or 'none'})")
    for name, table in loaded.items():
        for key, column in (("image", image_column), ("label", label_column)):
            if column not in table.column_names:
                columns = ", ".join(table.column_names)
                raise DataError(f"data.metadata.features.{key}: {repo} has no column {column!r} ({name}: {columns})")
    for split in splits:  # "test" asked for (npc evaluate --split test) and not there; valid: held out of train
        if split != "valid" and HF_SPLITS[split] not in loaded:
            raise DataError(f"data.metadata.repo: {repo} has no {HF_SPLITS[split]!r} split", UNUSABLE)
    wanted = [split for split in splits if HF_SPLITS[split] in loaded]
    tables = {split: loaded[HF_SPLITS[split]] for split in dict.fromkeys(["train", *wanted])}
    preprocess = Preprocess("rgb", int(config["image_size"]), tuple(config["mean"]), tuple(config["std"]))
    bad = BadSamples.from_config(config)
    source = _Source(repo, image_column, label_column, preprocess)
    if task == "segmentation":
        datasets, names, what = _segmentation(config, tables, source, bad)
    else:
        datasets, names, what = _classification(config, tables, source, bad)
    notes = bad.notes()
    if "valid" in splits and "valid" not in datasets:
        datasets["train"], datasets["valid"] = holdout_split(datasets["train"], notes, f"{repo}[train]")
    datasets = {split: datasets[split] for split in splits}
    sizes = ", ".join(f"{k} {len(v)}" for k, v in datasets.items())
    description = f"{config.get('name') or repo} (huggingface {repo}{what}, {len(names)} classes; {sizes})"
    return DataBundle(datasets, len(names), names, preprocess, False, description, notes, task, bad_samples=bad)


# --- loading -----------------------------------------------------------------------------------------------------


def _load(metadata: dict[str, Any], repo: str) -> dict[str, Any]:
    """The dataset's splits by name: ``load_from_disk`` for save_to_disk output, else ``load_dataset``."""
    import datasets  # the `hf` extra: a missing library ends the command naming it (npc/cli/exits.py)

    folder = Path(repo).expanduser()
    if not folder.exists() and repo.startswith((".", "/", "~")):  # a path, not a Hub id: no download to try
        raise DataError(f"data.metadata.repo: folder not found: {folder} (relative paths start here)", UNUSABLE)
    errors = (OSError, ValueError, datasets.exceptions.DatasetsError)
    try:
        if folder.is_dir() and any((folder / marker).is_file() for marker in _DISK_MARKERS):
            loaded = datasets.load_from_disk(str(folder))
        else:
            cache = metadata.get("custom_cache_dir")
            if cache:
                Path(cache).expanduser().mkdir(parents=True, exist_ok=True)
            loaded = datasets.load_dataset(
                str(folder) if folder.is_dir() else repo,
                name=metadata.get("subset"),
                cache_dir=str(Path(cache).expanduser()) if cache else None,
            )
    except errors as exc:
        where = "folder" if folder.is_dir() else "Hub dataset (needs network, or HF_DATASETS_OFFLINE=1 and a cache)"
        raise DataError(f"data.metadata.repo: cannot load the {where} {repo!r}: {exc}", UNUSABLE) from None
    if isinstance(loaded, datasets.Dataset):  # one table, no splits: it is the train split
        return {"train": loaded}
    return dict(loaded.items())


def _undecoded(table: Any, columns: list[str]) -> Any:
    """Only ``columns``, images left encoded: npc decodes them itself, so a bad one names its row."""
    from datasets import Image

    view = table.select_columns(columns)
    for column in columns:
        if isinstance(view.features[column], Image) and view.features[column].decode:
            view = view.cast_column(column, Image(decode=False))
    return view


class _Source:
    """What every split shares: where rows come from, their columns and how an image becomes a tensor."""

    def __init__(self, repo: str, image: str, label: str, preprocess: Preprocess) -> None:
        self.repo, self.image, self.label, self.preprocess = repo, image, label, preprocess

    def where(self, split: str, row: int) -> str:
        return f"{self.repo}[{HF_SPLITS[split]}][{row}]"


def decoded_image(value: Any, where: str, column: str) -> Any:
    """A cell of an image column as a PIL image: the ``Image`` feature's, encoded bytes, or a file path."""
    pil = pil_module()
    if isinstance(value, pil.Image.Image):
        return value
    if isinstance(value, dict) and (value.get("bytes") or value.get("path")):  # an Image feature with decode=False
        if not value.get("bytes"):
            return open_image(value["path"])
        try:
            with pil.Image.open(io.BytesIO(value["bytes"])) as image:
                image.load()
                return image.copy()
        except (OSError, SyntaxError, ValueError, pil.Image.DecompressionBombError) as exc:
            raise UnreadableFileError(f"{where}: cannot decode image ({exc})", path=where) from None
    if isinstance(value, str):
        return open_image(value)
    raise UnreadableFileError(
        f"{where}: column {column!r} holds {type(value).__name__}, not an image", path=where, reason="not an image"
    )


class HuggingFaceRows(Dataset):
    """Rows of one split: ``(row, class index)`` for classification, ``(row, None)`` for segmentation (the mask
    is the label column's image, read through ``lookup``)."""

    def __init__(self, table: Any, split: str, items: list[tuple[int, int | None]], source: _Source, lookup=None):
        self.table, self.split, self.items, self.source, self.lookup = table, split, items, source, lookup

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, Any]:
        row, label = self.items[index]
        where = self.source.where(self.split, row)
        try:
            record = self.table[int(row)]
        except (OSError, SyntaxError, ValueError) as exc:  # the library decodes the Image feature on access
            raise UnreadableFileError(f"{where}: cannot decode the row ({exc})", path=where) from None
        decoded = decoded_image(record[self.source.image], where, self.source.image)
        image = self.source.preprocess.rgb(decoded, training=self.split == "train")  # valid: the peer's eval size
        if self.lookup is None:
            return image, label
        mask = decoded_image(record[self.source.label], where, self.source.label)
        return image, self.lookup.convert(mask, where, self.source.preprocess.image_size)


# --- classification ----------------------------------------------------------------------------------------------


def _classification(
    config: dict[str, Any], tables: dict[str, Any], source: _Source, bad: BadSamples
) -> tuple[dict[str, Dataset], list[str], str]:
    names, index = _class_list(config, tables["train"], source)

    def check(candidate: tuple[int, Any, str]) -> tuple[int, int | None]:
        row, value, where = candidate
        if isinstance(value, bool) or value is None:
            found = None
        elif isinstance(value, int):
            found = value if 0 <= value < len(names) else None
        else:
            found = index.get(str(value))
        if found is None:
            shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
            message = f"{where}: class {value!r} is not one of the {len(names)} classes ({shown})"
            raise SampleError("unknown class", where, message)
        return row, found

    datasets: dict[str, Dataset] = {}
    for split, table in tables.items():
        values = list(table[source.label])
        candidates = [(row, value, source.where(split, row)) for row, value in enumerate(values)]
        items = bad.keep(split, candidates, check)
        bad.require(split, items, f"{source.repo}[{HF_SPLITS[split]}]")
        datasets[split] = HuggingFaceRows(_undecoded(table, [source.image]), split, items, source)
    return datasets, names, ""


def _class_list(config: dict[str, Any], train: Any, source: _Source) -> tuple[list[str], dict[str, int]]:
    """The class names (in index order) and name -> index: a ClassLabel's names, ``id_mapping``, or the train
    split's values (integers: 0..max; strings: sorted)."""
    from datasets import ClassLabel

    feature = train.features[source.label]
    mapping = config.get("id_mapping")
    if isinstance(feature, ClassLabel):
        names = list(feature.names)
    elif isinstance(mapping, list):
        names = [str(name) for name in mapping]
    elif isinstance(mapping, dict):
        keys, names = [str(k) for k in mapping], [str(v) for v in mapping.values()]
        return names, {**{key: i for i, key in enumerate(keys)}, **{name: i for i, name in enumerate(names)}}
    else:
        values = {value for value in train[source.label] if value is not None}
        if values and all(isinstance(value, int) and not isinstance(value, bool) for value in values):
            names = [str(i) for i in range(max(values) + 1)]
        else:
            names = sorted(str(value) for value in values)
    if not names:
        raise DataError(f"data.metadata.features.label: {source.repo}[train] has no labels in {source.label!r}")
    return names, {name: i for i, name in enumerate(names)}


# --- segmentation ------------------------------------------------------------------------------------------------


def _segmentation(
    config: dict[str, Any], tables: dict[str, Any], source: _Source, bad: BadSamples
) -> tuple[dict[str, Dataset], list[str], str]:
    from .segmentation import MaskLookup, mask_mapping

    mode = str(config.get("label_image_mode") or "L").upper()
    values, names = mask_mapping(config, mode)
    lookup = MaskLookup(mode, values)

    def check(candidate: tuple[int, Any, Any, str]) -> tuple[int, None]:
        row, image, mask, where = candidate
        try:
            image, mask = decoded_image(image, where, source.image), decoded_image(mask, where, source.label)
        except UnreadableFileError as exc:
            raise SampleError("corrupt image", where, exc.message) from None
        if mask.size != image.size:
            message = (
                f"{where}: mask is {mask.size[0]}x{mask.size[1]} pixels, its image is {image.size[0]}x"
                f"{image.size[1]} (a mask must have its image's size; npc does not resize it to fit)"
            )
            raise SampleError("mask size", where, message)
        if mode == "L":
            lookup.check_grey_values(where, mask)
        return row, None

    datasets: dict[str, Dataset] = {}
    for split, table in tables.items():
        pairs = _undecoded(table, [source.image, source.label])
        candidates = (
            (row, record[source.image], record[source.label], source.where(split, row))
            for row, record in enumerate(pairs)
        )
        items = bad.keep(split, candidates, check)
        bad.require(split, items, f"{source.repo}[{HF_SPLITS[split]}]")
        datasets[split] = HuggingFaceRows(pairs, split, items, source, lookup)
    return datasets, names, f", masks {mode}"
