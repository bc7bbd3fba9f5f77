"""NetsPresso's ``postprocessor.params.topk_max`` (its ImageNet recipes set 20): accepted, checked, and honoured as the
peer's classification postprocessor does, as the most (label, score) pairs a prediction lists."""

import json

import numpy as np
import pytest

from helpers import run_cli


def _with_postprocessor(spec, params: str):
    text = spec.read_text().replace("training:\n", f"  postprocessor:\n    params: {params}\ntraining:\n", 1)
    spec.write_text(text)
    return spec


def test_topk_max_is_a_checked_postprocessor_key(capsys, write_spec):
    spec = _with_postprocessor(write_spec("epochs: 1"), "{topk_max: 20}")
    code, out, err = run_cli(capsys, "validate", spec)
    assert code == 0, out + err
    spec = _with_postprocessor(write_spec("epochs: 1", name="bad.yaml"), "{topk_max: 0}")
    code, out, err = run_cli(capsys, "validate", spec)
    assert code == 1 and "/model/postprocessor/params/topk_max" in out + err


def test_predict_lists_at_most_topk_max_labels(capsys, write_spec, tiny_model_py, tmp_path):
    from PIL import Image

    spec = write_spec(
        "epochs: 1\nbatch_size: 128\noptimizer: {name: adamw, lr: 0.01}", "format: digits\nimage_size: 16"
    )
    _with_postprocessor(spec, "{topk_max: 2}")
    code, out, _ = run_cli(
        capsys, "train", spec, "--model-py", tiny_model_py, "--out", tmp_path / "run", "--no-tensorboard"
    )
    assert code == 0, out
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "blank.png")
    for run in (tmp_path / "run", spec):
        extra = () if run != spec else ("--weights", tmp_path / "run" / "best.safetensors", "--model-py", tiny_model_py)
        code, out, err = run_cli(
            capsys, "predict", run, tmp_path / "blank.png", "--format", "json", "--top-k", "5", *extra
        )
        assert code == 0, out + err
        (record,) = json.loads(out)
        assert len(record["top_k"]) == 2  # --top-k 5, capped by the spec's topk_max
    code, out, _ = run_cli(capsys, "predict", tmp_path / "run", tmp_path / "blank.png", "--format", "json")
    assert len(json.loads(out)[0]["top_k"]) == 1  # below the cap, --top-k decides


@pytest.mark.parametrize("recipe", ["resnet18", "resnet34", "resnet50"])
def test_the_peers_imagenet_model_files_validate(capsys, recipe):
    from helpers import REPO

    path = REPO.parent / "shared" / "peer" / "configs" / "benchmark_examples"
    model = path / f"classification-imagenet1k-{recipe}" / "model.yaml"
    if not model.is_file():
        pytest.skip(f"the peer's published configs are not at {path}")
    code, out, err = run_cli(capsys, "validate", model)
    assert code == 0, out + err
