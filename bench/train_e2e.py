"""End-to-end training, npc against NetsPresso Trainer 1.4.1, on the same six config files and the same data.

usage: python bench/train_e2e.py --peer-python /work/peer-venv/bin/python [--tasks classification detection ...]
       [--rounds 2] [--epochs N] [--workers 4] [--phases] [--cprofile] [--json] [--work DIR]

For each task a small data set is written in the peer's local layout (``bench/_train_e2e_data.py``: 1,437 + 360
scikit-learn digits at 64² for resnet18 classification; 200 + 50 generated shapes images at 128² for yolox-nano
detection, 200 + 50 at 64² for segformer-b0 segmentation, 96 + 32 stick figures at 256² for RTMPose) with the six files
(model, data, augmentation, training, environment, logging) both tools read unchanged: ``npc train --model ...
--environment ...`` and the peer's ``netspresso-train`` with the same arguments. Each round runs both tools one after
the other, the order alternating round by round, each in a fresh process of its own Python (npc: ``--npc-python``, by
default this repository's ``.venv``; the peer: ``--peer-python``), started through ``bench/_train_e2e_child.py``, which
records without measurable cost the first backward pass, every epoch's training loop, validation and saving.

Reported per tool (medians over rounds): start-up (process start to the first backward), s/epoch (from one
epoch's start to the next's, so validation, checkpoints and logging count; epochs 2 on), its training loop and
validation parts, steps per epoch, training img/s, total wall time, peak RSS (the main process; and the whole
process tree, workers included, sampled every 0.2 s) and the final / best validation metric each tool logged.
``--phases`` adds one run per tool with the phase split of ``_train_e2e_child.py`` (data, augmentation, forward,
loss, backward, optimiser, postprocess, metric, saving, the rest); ``--cprofile`` a cProfile of that run.
Absolute times on a shared machine are noisy: the load average is printed with each run. Run on demand; not part
of the test suite.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _train_e2e_data import RECIPES, write_dataset, write_files  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CHILD = Path(__file__).with_name("_train_e2e_child.py")
CANDIDATES = Path(__file__).with_name("_train_e2e_candidates.py")
PEER_FIXES = Path(__file__).with_name("_train_e2e_peer_fixes.py")
FILES = ("model", "data", "augmentation", "training", "logging", "environment")
# npc's speed options a variant can name: the lines added to its training file
OPTIONS = {
    "channels_last": "  channels_last: true\n",
    "bf16": "  mixed_precision: bfloat16\n",
    "loop_optimizer": "  fused_optimizer: false\n",  # torch's per-tensor optimizer loop, as npc before 2026-12-02 (4th)
}
METRIC = {"classification": "top1", "detection": "map50", "segmentation": "miou", "pose_estimation": "pck"}


def tree_rss_mib(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants (from /proc; 0 where it is gone)."""
    total, todo = 0, [pid]
    while todo:
        current = todo.pop()
        try:
            with open(f"/proc/{current}/status") as handle:
                for line in handle:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo += [int(p) for p in handle.read().split()]
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
    return total / 1024


def run_tool(tool: str, python: str, files: dict[str, Path], folder: Path, args, *, phases=False) -> dict:
    report = folder / "report.json"
    command = [python, str(CHILD), "--tool", tool.split(":")[0], "--report", str(report)]
    if phases:
        command.append("--phases")
        if args.cprofile:
            command += ["--cprofile", str(folder / "run.prof")]
    variant = ",".join(_variant(tool)[1])
    if variant:
        command += ["--preload", str(CANDIDATES)]
    elif tool == "peer" and json.loads((folder / "task.json").read_text())["task"] == "pose_estimation":
        command += ["--preload", str(PEER_FIXES)]  # its local pose loader does not run unfixed (the file says why)
    elif tool == "npc" and args.npc_preload:
        command += ["--preload", str(Path(args.npc_preload).resolve())]
    command.append("--")
    command += ["train"] if tool.startswith("npc") else []
    for name in FILES:
        command += [f"--{name}", str(files[name])]
    env = dict(os.environ)
    env.pop("PYTHONPATH", None)
    if args.threads:  # torch's default (all cores) spins against other work on a shared machine: 3-10x slower
        env["OMP_NUM_THREADS"] = env["MKL_NUM_THREADS"] = str(args.threads)
    env["E2E_T0"] = repr(time.time())
    if tool.startswith("npc"):
        env.update(dict(item.split("=", 1) for item in args.npc_env))
        env["NPC_E2E_FIX"] = variant
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with open(folder / "stdout.log", "w") as out, open(folder / "stderr.log", "w") as err:
        process = subprocess.Popen(command, cwd=folder, stdout=out, stderr=err, env=env)
        peak = [0.0]

        def sample() -> None:
            while process.poll() is None:
                peak[0] = max(peak[0], tree_rss_mib(process.pid))
                time.sleep(0.2)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        code = process.wait()
        sampler.join()
    wall = time.perf_counter() - started
    if code != 0 or not report.is_file():
        tail = (folder / "stderr.log").read_text().strip().splitlines()[-3:]
        return {"error": f"exit {code}: " + " | ".join(tail)[-300:]}
    data = json.loads(report.read_text())
    result = summarise(data, tool, folder, files)
    result |= {"wall_s": wall, "tree_rss_mib": peak[0], "load": [load_before, os.getloadavg()[0]]}
    (folder / "driver.json").write_text(json.dumps({k: result[k] for k in ("wall_s", "tree_rss_mib", "load")}))
    if phases:
        result["phases"] = data.get("phases") or {}
        result["phase_counts"] = data.get("phase_counts") or {}
    return result


def _variant(tool: str) -> tuple[list[str], list[str]]:
    """``npc:FIX,FIX`` → (npc's own speed options among the fixes, OPTIONS, which ``_with_options`` writes into its
    training file; the rest, ``bench/_train_e2e_candidates.py``'s monkeypatched fixes)."""
    fixes = [fix for fix in tool.partition(":")[2].split(",") if fix]
    return [fix for fix in fixes if fix in OPTIONS], [fix for fix in fixes if fix not in OPTIONS]


def _with_options(training: Path, tool: str) -> None:
    """npc's own speed options of an ``npc:OPTION,...`` variant, appended to its training file (the recipe's
    ``mixed_precision: False`` line is taken out first, so that ``bf16`` does not set the key twice)."""
    lines = [OPTIONS[fix] for fix in _variant(tool)[0]]
    if lines:
        text = training.read_text().replace("  mixed_precision: False\n", "")
        training.write_text(text + "".join(lines))


def _pairs(events: list[dict], name: str) -> list[tuple[float, float]]:
    starts = [e["t"] for e in events if e["name"] == f"{name}:start"]
    ends = [e["t"] for e in events if e["name"] == f"{name}:end"]
    return list(zip(starts, ends))


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def summarise(data: dict, tool: str, folder: Path, files: dict[str, Path]) -> dict:
    events = data["events"]
    trains = _pairs(events, "train")
    epochs = len(trains)
    starts = [s for s, _ in trains]
    exit_t = next(e["t"] for e in events if e["name"] == "exit")
    epoch_s = [b - a for a, b in zip(starts, starts[1:])]
    steady = epoch_s[1:] or epoch_s  # epoch 1 warms up allocator and caches
    train_s = [b - a for a, b in trains]
    valid_s = [b - a for a, b in _pairs(events, "valid")]
    cpu_starts = [(e["cpu"], e["kids"]) for e in events if e["name"] == "train:start" and "cpu" in e]
    cpu_epoch = [b[0] - a[0] for a, b in zip(cpu_starts, cpu_starts[1:])]
    kids_epoch = [b[1] - a[1] for a, b in zip(cpu_starts, cpu_starts[1:])]
    steps = data["backward_calls"] / max(1, epochs)
    batch = int(
        next(
            line.split(":")[1] for line in files["environment"].read_text().splitlines() if "batch_size" in line
        ).split("#")[0]
    )
    train_steady = _median(train_s[1:] or train_s)
    return {
        "epochs": epochs,
        "startup_s": data["first_backward"],
        "import_s": next((e["t"] for e in events if e["name"] == "imported"), None),
        "first_epoch_s": epoch_s[0] if epoch_s else None,
        "epoch_s": _median(steady),
        "epoch_s_all": epoch_s,
        "train_s": train_steady,
        "cpu_epoch_s": _median(cpu_epoch[1:] or cpu_epoch),  # the main process's CPU time per epoch
        "workers_cpu_epoch_s": _median(kids_epoch[1:] or kids_epoch),  # its DataLoader workers'
        "valid_s": _median(valid_s[1:] or valid_s),
        "after_last_epoch_s": exit_t - trains[-1][1] if trains else None,
        "exit_s": exit_t,
        "steps_per_epoch": steps,
        "img_per_s": steps * batch / train_steady if train_steady else None,
        "peak_rss_mib": data["peak_rss_mib"],
        "torch": data.get("torch"),
        "threads": data.get("threads"),
        **metrics(tool, folder),
    }


def metrics(tool: str, folder: Path) -> dict:
    """The final and best validation metric the tool logged (as a fraction), and the validation losses."""
    task = json.loads((folder / "task.json").read_text())["task"]
    key = METRIC[task]
    values: list[float] = []
    losses: list[float] = []
    if tool.startswith("npc"):
        found = sorted((folder / "outputs").rglob("metrics.csv"))
        if found:
            with open(found[-1], newline="") as handle:
                for row in csv.DictReader(handle):
                    if row.get(f"valid_{key}"):
                        values.append(float(row[f"valid_{key}"]))
                        losses.append(float(row["valid_loss"]))
    else:
        found = sorted((folder / "outputs").rglob("training_summary.json"))
        if found:
            summary = json.loads(found[-1].read_text())
            values, losses = _peer_history(summary, key)
    return {
        "metric": key,
        "final_metric": values[-1] if values else None,
        "best_metric": max(values) if values else None,
        "final_valid_loss": losses[-1] if losses else None,
    }


PEER_NAMES = {
    "top1": ("Acc_1", "Acc@1", "top1"),
    "map50": ("mAP50", "map50"),
    "miou": ("mIoU", "miou"),
    "pck": ("PCK", "pck"),  # the peer's PCK is at 0.05 of the input size, npc's at 0.2 of the box (docs/runtime.md)
}


def _peer_history(summary: dict, key: str) -> tuple[list[float], list[float]]:
    values, losses = [], []
    history = summary.get("valid_metrics") or {}
    names = PEER_NAMES[key]
    for epoch in sorted(history, key=int):
        entry = history[epoch]
        for name in names:
            if name in entry:
                value = entry[name]["mean"] if isinstance(entry[name], dict) else entry[name]
                values.append(float(value) / (100.0 if float(value) > 1.0 else 1.0))
                break
    for epoch in sorted(summary.get("valid_losses") or {}, key=int):
        loss = summary["valid_losses"][epoch]
        losses.append(float(loss.get("total", loss) if isinstance(loss, dict) else loss))
    return values, losses


# --- report ----------------------------------------------------------------------------------------------------

COLUMNS = [
    ("startup_s", "start-up s (to 1st backward)", "{:.1f}"),
    ("epoch_s", "s/epoch", "{:.2f}"),
    ("train_s", "train s", "{:.2f}"),
    ("valid_s", "valid s", "{:.2f}"),
    ("cpu_epoch_s", "CPU s/epoch main", "{:.2f}"),
    ("workers_cpu_epoch_s", "CPU s/epoch workers", "{:.2f}"),
    ("steps_per_epoch", "steps/epoch", "{:.0f}"),
    ("img_per_s", "train img/s", "{:.1f}"),
    ("wall_s", "total wall s", "{:.1f}"),
    ("peak_rss_mib", "peak RSS MiB (main)", "{:,.0f}"),
    ("tree_rss_mib", "peak RSS MiB (tree)", "{:,.0f}"),
]


def _cell(runs: list[dict], key: str, fmt: str) -> str:
    values = [r[key] for r in runs if r.get(key) is not None]
    return fmt.format(statistics.median(values)) if values else "–"


def table(results: dict[str, dict[str, list[dict]]]) -> str:
    header = "| task | tool | " + " | ".join(title for _, title, _ in COLUMNS) + " | final / best metric |"
    lines = [header, "|" + "---|" * (len(COLUMNS) + 3)]
    for task, by_tool in results.items():
        for tool in by_tool:
            runs = [r for r in by_tool.get(tool, []) if "error" not in r]
            if not runs:
                errors = [r["error"] for r in by_tool.get(tool, [])]
                lines.append(f"| {task} | {tool} | " + " | ".join("–" for _ in COLUMNS) + f" | fails: {errors[:1]} |")
                continue
            metric = " · ".join(
                f"{r['final_metric']:.1%} / {r['best_metric']:.1%}" if r.get("final_metric") is not None else "–"
                for r in runs
            )
            cells = " | ".join(_cell(runs, key, fmt) for key, _, fmt in COLUMNS)
            lines.append(f"| {task} | {tool} | {cells} | {METRIC[task]} {metric} |")
        theirs = [r["epoch_s"] for r in by_tool.get("peer", []) if r.get("epoch_s")]
        for tool in by_tool:
            ours = [r["epoch_s"] for r in by_tool.get(tool, []) if r.get("epoch_s")]
            if ours and theirs and tool != "peer":
                ratio = statistics.median(ours) / statistics.median(theirs)
                lines.append(f"| {task} | {tool} / peer s/epoch | {ratio:.2f} |" + " |" * len(COLUMNS))
    return "\n".join(lines)


def phase_table(phased: dict[str, dict[str, dict]]) -> str:
    """Seconds per epoch in each phase (exclusive), npc against the peer."""
    out = []
    for task, by_tool in phased.items():
        epochs = {tool: max(1, r.get("epochs") or 1) for tool, r in by_tool.items() if "phases" in r}
        names = sorted({name for r in by_tool.values() for name in r.get("phases", {})})
        out.append(f"\n{task}: seconds per epoch by phase (exclusive wall time; setup and end are per run)\n")
        out.append("| phase | npc | peer | npc − peer |")
        out.append("|---|---:|---:|---:|")
        for name in names:
            per_run = name.startswith(("setup:", "end:"))
            row = []
            for tool in ("npc", "peer"):
                r = by_tool.get(tool, {})
                value = r.get("phases", {}).get(name)
                row.append(None if value is None else value / (1 if per_run else epochs.get(tool, 1)))
            cells = ["–" if v is None else f"{v:.3f}" for v in row]
            diff = f"{(row[0] or 0) - (row[1] or 0):+.3f}"
            out.append(f"| {name}{' (per run)' if per_run else ''} | {cells[0]} | {cells[1]} | {diff} |")
    return "\n".join(out)


def from_runs(dirs: list[Path]) -> tuple[dict, dict]:
    """Results again from run folders (``<stamp>/<task>/<tool>-<round>/``) a previous call left."""
    results: dict[str, dict[str, list[dict]]] = {}
    phased: dict[str, dict[str, dict]] = {}
    for base in dirs:
        for report in sorted(base.glob("*/*/report.json")):
            folder = report.parent
            task = folder.parent.name
            tool, _, round_ = folder.name.rpartition("-")
            data = json.loads(report.read_text())
            files = {name: folder / f"{name}.yaml" for name in FILES}
            wanted = next(
                int(line.split(":")[1]) for line in files["training"].read_text().splitlines() if "epochs:" in line
            )
            if len(_pairs(data["events"], "train")) < wanted:  # stopped before its end (a signal)
                continue
            result = summarise(data, tool, folder, files) | {"folder": str(folder)}
            driver = folder / "driver.json"  # wall time, tree RSS and load as the driver saw them
            result |= json.loads(driver.read_text()) if driver.is_file() else {"wall_s": result["exit_s"]}
            if round_ == "phases":
                phased.setdefault(task, {})[tool] = result | {"phases": data.get("phases") or {}}
            else:
                results.setdefault(task, {}).setdefault(tool, []).append(result)
    return results, phased


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-python", help="a Python with netspresso_trainer 1.4.1 installed")
    parser.add_argument("--npc-python", default=str(REPO / ".venv" / "bin" / "python"))
    parser.add_argument("--tasks", nargs="+", default=["classification", "detection"], choices=sorted(RECIPES))
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--epochs", type=int, help="override every recipe's epochs")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS for both (0: torch's default)")
    parser.add_argument("--seed", type=int, default=1, help="environment.seed for both (the metric's spread)")
    parser.add_argument("--workers", type=int, default=4, help="environment.num_workers (the peer's default: 4)")
    parser.add_argument("--work", default="/tmp/npc-train-e2e", help="data sets and run folders (outside the repo)")
    parser.add_argument("--only", choices=["npc", "peer"], help="run one tool only")
    parser.add_argument("--phases", action="store_true", help="add one phase-instrumented run per tool and task")
    parser.add_argument("--phases-only", action="store_true", help="only the phase-instrumented runs")
    parser.add_argument("--cprofile", action="store_true", help="with --phases: a cProfile of that run (run.prof)")
    parser.add_argument(
        "--variant",
        action="append",
        default=[],
        metavar="FIX[,FIX]",
        help="also run npc with these options (channels_last, bf16, loop_optimizer) or bench/_train_e2e_candidates.py "
        "fixes, in the same rounds",
    )
    parser.add_argument("--npc-env", action="append", default=[], metavar="KEY=VALUE", help="extra env for npc")
    parser.add_argument("--npc-preload", help="a Python file the npc child runs first (candidate-fix experiments)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--from-runs", nargs="+", metavar="DIR", help="summarise finished run folders again")
    return parser


def main() -> int:
    parser = _parser()
    args = parser.parse_args()
    tools = [args.only] if args.only else ["npc", "peer"]
    tools += [f"npc:{fixes}" for fixes in args.variant]
    if "peer" in tools and not args.peer_python and not args.from_runs:
        parser.error("--peer-python is required (or --only npc)")
    pythons = {"npc": args.npc_python, "peer": args.peer_python} | {f"npc:{f}": args.npc_python for f in args.variant}
    work = Path(args.work)
    results: dict[str, dict[str, list[dict]]] = {}
    phased: dict[str, dict[str, dict]] = {}
    if args.from_runs:
        results, phased = from_runs([Path(d) for d in args.from_runs])
        args.tasks = []
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for task in args.tasks:
        recipe = RECIPES[task]
        data_root = work / "data" / task
        counts = write_dataset(recipe, data_root)
        print(f"{task}: data {counts} at {data_root}", file=sys.stderr)
        results[task] = {tool: [] for tool in tools}
        plan = (
            []
            if args.phases_only
            else [(k, t) for k in range(args.rounds) for t in (tools if k % 2 == 0 else tools[::-1])]
        )
        if args.phases or args.phases_only:
            plan += [("phases", t) for t in tools]
        for round_, tool in plan:
            folder = work / "runs" / stamp / task / f"{tool}-{round_}"
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "task.json").write_text(json.dumps({"task": task}))
            files = write_files(
                recipe, folder, data_root, folder / "outputs", epochs=args.epochs, workers=args.workers, seed=args.seed
            )
            _with_options(files["training"], tool)
            result = run_tool(tool, pythons[tool], files, folder, args, phases=round_ == "phases")
            result["folder"] = str(folder)
            brief = {
                k: (round(v, 3) if isinstance(v, float) else v)
                for k, v in result.items()
                if k
                in (
                    "error",
                    "startup_s",
                    "epoch_s",
                    "train_s",
                    "valid_s",
                    "steps_per_epoch",
                    "wall_s",
                    "final_metric",
                    "load",
                )
            }
            print(f"{task} {tool} round {round_}: {brief}", file=sys.stderr)
            if round_ == "phases":
                phased.setdefault(task, {})[tool] = result
            else:
                results[task][tool].append(result)
    machine = (
        f"Machine: {platform.machine()}, CPython {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"OMP_NUM_THREADS={args.threads or 'default'}, environment.num_workers {args.workers}; "
        f"load average now {os.getloadavg()[0]:.2f}"
    )
    if args.json:
        print(json.dumps({"machine": machine, "results": results, "phases": phased}, indent=1, default=str))
        return 0
    print(machine)
    print()
    if any(results[t][tool] for t in results for tool in results[t]):
        print(table(results))
    if phased:
        print(phase_table(phased))
    return 0


if __name__ == "__main__":
    sys.exit(main())
