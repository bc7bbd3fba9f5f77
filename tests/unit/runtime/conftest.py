"""Fixtures for the runtime tests: a tiny stand-in model.py (fast on CPU) and spec/data writers."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

# A spec whose model part validates (resnet + fc); tests train the tiny model below through --model-py.
MODEL_SECTION = """\
model:
  task: classification
  name: tiny
  checkpoint:
    use_pretrained: {use_pretrained}
    load_head: {load_head}
    path: {path}
    optimizer_path: ~
  freeze_backbone: {freeze}
  architecture:
    backbone:
      name: resnet
      params: {{block_type: basicblock, norm_type: batch_norm}}
      stage_params:
        - {{channels: 8, num_blocks: 1}}
    head:
      name: fc
      params: {{num_layers: 1}}
"""

TINY_MODEL = '''\
"""Tiny stand-in with the compiled models' interface: backbone.* / head.*, forward -> {"pred": logits}."""

import torch
from torch import nn


class Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.norm = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(16)
        self.drop = nn.Dropout(0.1)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = torch.relu(self.norm(self.conv(x)))
        x = torch.relu(self.norm2(self.conv2(x)))
        return [self.drop(x.mean(dim=(2, 3)))]


class Head(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.classifier = nn.Linear(16, num_classes)

    def forward(self, features: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {"pred": self.classifier(features[-1])}


class Tiny(nn.Module):
    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.backbone = Backbone()
        self.head = Head(num_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        return self.head(self.backbone(x))


def build_model(num_classes: int) -> nn.Module:
    return Tiny(num_classes)
'''


@pytest.fixture(autouse=True)
def _one_thread():
    """pytest -n 2 on two cores: two threads per worker would oversubscribe and crawl."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiny_model_py(tmp_path: Path) -> Path:
    path = tmp_path / "tiny_model.py"
    path.write_text(TINY_MODEL)
    return path


@pytest.fixture
def write_spec(tmp_path: Path):
    """write_spec(training=..., data=..., **model_fields) -> path of a spec file with those sections."""

    def write(
        training: str | None = None,
        data: str | None = None,
        *,
        name: str = "spec.yaml",
        use_pretrained: bool = False,
        load_head: bool = True,
        path: str | None = None,
        freeze: bool = False,
    ) -> Path:
        text = MODEL_SECTION.format(
            use_pretrained=str(use_pretrained).lower(),
            load_head=str(load_head).lower(),
            path=path if path else "~",
            freeze=str(freeze).lower(),
        )
        if training is not None:
            text += "training:\n" + textwrap.indent(textwrap.dedent(training).strip("\n"), "  ") + "\n"
        if data is not None:
            text += "data:\n" + textwrap.indent(textwrap.dedent(data).strip("\n"), "  ") + "\n"
        target = tmp_path / name
        target.write_text(text)
        return target

    return write


@pytest.fixture
def make_images():
    """make_images(folder, count) -> file names of ``count`` small PNGs written into ``folder``."""
    from PIL import Image

    def make(folder: Path, count: int, size: int = 12, color=(200, 30, 30)) -> list[str]:
        folder.mkdir(parents=True, exist_ok=True)
        names = []
        for i in range(count):
            name = f"img_{i}.png"
            Image.new("RGB", (size, size), tuple((c + 7 * i) % 256 for c in color)).save(folder / name)
            names.append(name)
        return names

    return make
