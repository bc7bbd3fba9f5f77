"""Language-server latency: time from a `textDocument/didChange` to the `publishDiagnostics` for that version.

usage: python bench/lsp_latency.py [--repeat N] [SPEC ...]
       (default: every spec in examples/ and examples/forms/, and the 48 zoo specs in zoo/)
Drives `npc lsp` over stdio as an editor does (pygls's client), alternating each spec between two versions that
differ by a trailing newline, so every change is checked in full: load, expressions, schema, semantic rules and
the graph passes. The figure includes the server's debounce (lsp/_server.py DEBOUNCE_S). Prints a Markdown table
for docs/benchmarks.md. Run on demand; not part of the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from lsprotocol import types
from pygls.lsp.client import LanguageClient

from npc.spec import check_text

REPO = Path(__file__).resolve().parents[1]
ZOO = REPO / "zoo"  # npc's own specs of NetsPresso Trainer's 48 model configs
# The target for every zoo spec on the development machine (2 CPU cores).
TARGET_MEDIAN_MS, TARGET_P95_MS = 50.0, 150.0
LANGUAGES = {".yaml": "yaml", ".yml": "yaml", ".json": "json", ".npc": "npc"}


def default_specs() -> list[Path]:
    specs = sorted((REPO / "examples").glob("*.*")) + sorted((REPO / "examples" / "forms").glob("*.*"))
    specs = [p for p in specs if p.suffix in LANGUAGES]
    specs += sorted(ZOO.glob("*.yaml"))
    return specs


class Timer:
    """Records when each (uri, version) was published."""

    def __init__(self) -> None:
        self.published: dict[tuple[str, int], tuple[float, int]] = {}
        self.arrived = asyncio.Event()

    def note(self, params: types.PublishDiagnosticsParams) -> None:
        self.published[(params.uri, params.version)] = (time.perf_counter(), len(params.diagnostics))
        self.arrived.set()

    async def wait(self, uri: str, version: int) -> tuple[float, int]:
        while (uri, version) not in self.published:
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), timeout=60)
        return self.published[(uri, version)]


async def start() -> tuple[LanguageClient, Timer]:
    client, timer = LanguageClient("npc-bench", "1"), Timer()

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def published(params: types.PublishDiagnosticsParams) -> None:
        timer.note(params)

    await client.start_io(sys.executable, "-m", "npc", "lsp")
    await client.initialize_async(types.InitializeParams(capabilities=types.ClientCapabilities()))
    client.initialized(types.InitializedParams())
    return client, timer


async def measure(client: LanguageClient, timer: Timer, spec: Path, repeat: int) -> tuple[list[float], int]:
    """Latencies (ms) of ``repeat`` changes, after two warm-up changes; and the diagnostics count."""
    text = spec.read_text(encoding="utf-8")
    uri = spec.resolve().as_uri()
    item = types.TextDocumentItem(uri=uri, language_id=LANGUAGES[spec.suffix], version=0, text=text)
    client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=item))
    await timer.wait(uri, 0)
    times, problems = [], 0
    for version in range(1, repeat + 3):
        change = types.TextDocumentContentChangeWholeDocument(text=text + "\n" * (version % 2))
        sent = time.perf_counter()
        client.text_document_did_change(
            types.DidChangeTextDocumentParams(
                text_document=types.VersionedTextDocumentIdentifier(uri=uri, version=version),
                content_changes=[change],
            )
        )
        arrived, problems = await timer.wait(uri, version)
        if version > 2:
            times.append((arrived - sent) * 1000)
    client.text_document_did_close(types.DidCloseTextDocumentParams(types.TextDocumentIdentifier(uri=uri)))
    return times, problems


def check_ms(spec: Path, repeat: int) -> float:
    """The check alone, in this process (what the server's latency adds to it is IPC, debounce and LSP types)."""
    text = spec.read_text(encoding="utf-8")
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        check_text(text, str(spec))
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def p95(times: list[float]) -> float:
    return statistics.quantiles(times, n=20, method="inclusive")[-1]


def shown(spec: Path) -> str:
    return str(spec.relative_to(REPO) if spec.is_relative_to(REPO) else spec)


async def run(specs: list[Path], repeat: int) -> int:
    client, timer = await start()
    rows, missed = [], []
    try:
        for spec in specs:
            times, problems = await measure(client, timer, spec, repeat)
            median, high = statistics.median(times), p95(times)
            rows.append((shown(spec), spec.stat().st_size, problems, median, high, check_ms(spec, repeat)))
            if median > TARGET_MEDIAN_MS or high > TARGET_P95_MS:
                missed.append(shown(spec))
    finally:
        await client.shutdown_async(None)
        client.exit(None)
        await client.stop()
    load = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    print(
        f"`npc lsp`, didChange → publishDiagnostics, {repeat} changes per spec; Python {platform.python_version()}, "
        f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPUs, load average {load} at the end\n"
    )
    print("| spec | bytes | diagnostics | median ms | p95 ms | check alone, median ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, size, problems, median, high, alone in rows:
        print(f"| {name} | {size} | {problems} | {median:.1f} | {high:.1f} | {alone:.1f} |")
    medians = [row[3] for row in rows]
    highs = [row[4] for row in rows]
    print(
        f"\nall {len(rows)} specs: median of medians {statistics.median(medians):.1f} ms, "
        f"worst median {max(medians):.1f} ms, worst p95 {max(highs):.1f} ms; "
        f"target (median ≤ {TARGET_MEDIAN_MS:g} ms, p95 ≤ {TARGET_P95_MS:g} ms) missed by: "
        f"{', '.join(missed) or 'none'}"
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="*", type=Path)
    parser.add_argument("--repeat", type=int, default=30, help="changes timed per spec (default 30)")
    args = parser.parse_args()
    return asyncio.run(run(args.specs or default_specs(), args.repeat))


if __name__ == "__main__":
    raise SystemExit(main())
