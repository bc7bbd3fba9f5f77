"""The README's main job end to end: `npc train examples/resnet-digits.yaml` (a real compiled ResNet) on the
built-in digits, then `npc evaluate` and `npc predict` on the run folder, all through the console script.
"""

import csv
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import REPO
from npc.runtime.checkpoint import load_weights

pytest.importorskip("torch")

EXAMPLE = REPO / "examples" / "resnet-digits.yaml"
NPC = Path(sys.executable).with_name("npc")


def _npc(*args, cwd):
    # One thread per process: `pytest -n 2` on two cores would otherwise oversubscribe and crawl.
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(NPC), *map(str, args)], capture_output=True, text=True, cwd=cwd, env=env, timeout=300)


@pytest.mark.slow
def test_train_the_example_then_evaluate_and_predict(tmp_path):
    run = tmp_path / "demo"
    started = time.perf_counter()
    result = _npc("train", EXAMPLE, "--out", run, cwd=tmp_path)
    seconds = time.perf_counter() - started
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr

    rows = list(csv.DictReader(open(run / "metrics.csv")))
    best = max(float(r["valid_top1"]) for r in rows)
    print(f"\nresnet-digits: best valid top-1 {best:.2%} after {len(rows)} epochs, {seconds:.1f}s wall")
    assert best >= 0.90
    assert seconds < 120
    for name in ("model.py", "resolved.yaml", "best.safetensors", "last.safetensors", "training_state.pt"):
        assert (run / name).is_file(), name
    assert list((run / "tb").glob("events.out.tfevents.*"))
    assert "class ResnetDigits" in (run / "model.py").read_text() or "def build_model" in (run / "model.py").read_text()

    result = _npc("evaluate", run, "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout)
    # best.safetensors is the epoch the run's best_model_criterion chose (the lowest valid loss by default), which
    # need not be the epoch of the highest top-1: evaluating it gives that epoch's validation figure again
    chosen = load_weights(run / "best.safetensors")[1]["epoch"]
    losses = [float(r["valid_loss"]) for r in rows]
    assert chosen == losses.index(min(losses)) + 1
    assert metrics["top1"] == pytest.approx(float(rows[chosen - 1]["valid_top1"]), abs=1e-5)

    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = []
    for index in (3, 10, 25):  # a few digits saved as ordinary PNG files (bright ink on black)
        picture = (digits.images[index] / 16 * 255).round().astype("uint8")
        path = tmp_path / f"digit_{index}.png"
        Image.fromarray(picture).resize((64, 64), Image.Resampling.NEAREST).save(path)
        images.append((path, int(digits.target[index])))
    result = _npc("predict", run, *[p for p, _ in images], "--format", "json", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    predicted = [int(r["label"]) for r in json.loads(result.stdout)]
    assert predicted == [label for _, label in images]
