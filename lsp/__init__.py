"""``npc lsp``: a Language Server Protocol server for specs in YAML, JSON and .npc.

An editor's buffer in (over stdio), what `npc validate` says about it out — as diagnostics with exact ranges —
plus hover, completion, code actions (did-you-mean, migrate), formatting (`npc fmt`) and go-to-generated-code.
Built on pygls and lsprotocol (the ``lsp`` extra). Like the compiler, it never imports torch, and it writes no
file: every change is an edit the editor applies.
"""

from __future__ import annotations

from ._analysis import Analysis, analyse

__all__ = ["Analysis", "analyse", "serve"]


def serve() -> int:
    """Run the server on stdin/stdout (the ``npc lsp`` command)."""
    from ._server import serve as run

    return run()
