"""The language server: LSP messages in (stdio), npc's own checks, formatting and migration out.

Handlers are thin: each turns an LSP request into a call on an :class:`~._analysis.Analysis` (or on
``npc.spec``'s fmt/migrate) and the answer back into LSP types. Diagnostics are published for every version of a
document, debounced while the user types; a check that fails unexpectedly is logged and shown as one diagnostic,
so the server never dies and never leaves the last version's diagnostics standing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlparse

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import to_fs_path
from pygls.workspace import TextDocument
from pygls.workspace.position_codec import ServerTextPosition

from .. import __version__
from ._actions import code_actions, format_document
from ._analysis import Analysis, analyse
from ._completion import completions
from ._definition import definition
from ._hover import hover
from ._ranges import Span, diagnostic_span

__all__ = ["NpcLanguageServer", "create_server"]

logger = logging.getLogger("npc.lsp")

# A change that follows a pause is checked at once; changes closer together than this are checked once, on the
# last text (a check takes 5-100 ms, keystrokes come ~100 ms apart, a paste or an undo many at once).
DEBOUNCE_S = 0.01
SEVERITY = {"error": types.DiagnosticSeverity.Error, "warning": types.DiagnosticSeverity.Warning}


class NpcLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("npc", __version__, text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.analyses: dict[str, Analysis] = {}  # uri -> analysis of the version last published
        self.pending: dict[str, asyncio.TimerHandle] = {}
        self.last_change: dict[str, float] = {}  # uri -> loop time of its last change

    def analysis(self, uri: str) -> tuple[TextDocument, Analysis]:
        """The document and an analysis of its current text (made now if the debounced one has not run yet)."""
        document = self.workspace.get_text_document(uri)
        current = self.analyses.get(uri)
        if current is None or current.text != document.source:
            current = self.check(document)
        return document, current

    def check(self, document: TextDocument) -> Analysis:
        try:
            current = analyse(document.source, path_of(document.uri))
        except Exception as exc:  # a bug in npc; say so in the editor and keep serving
            logger.exception("checking %s failed", document.uri)
            failure = f"npc lsp: internal error while checking this file ({type(exc).__name__}: {exc})"
            current = Analysis(document.source, path_of(document.uri), failure=failure)
        self.analyses[document.uri] = current
        return current

    def publish(self, uri: str) -> None:
        self.pending.pop(uri, None)
        document = self.workspace.get_text_document(uri)
        current = self.check(document)
        try:
            diagnostics = [to_lsp_diagnostic(document, current, d) for d in current.diagnostics]
        except Exception as exc:  # a bug in locating them: still replace the last version's diagnostics
            logger.exception("locating the diagnostics of %s failed", uri)
            current.failure = f"npc lsp: internal error while locating problems ({type(exc).__name__}: {exc})"
            diagnostics = []
        if current.failure:
            start = types.Position(line=0, character=0)
            diagnostics.append(types.Diagnostic(types.Range(start=start, end=start), current.failure, source="npc"))
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=uri, diagnostics=diagnostics, version=document.version)
        )

    def schedule(self, uri: str) -> None:
        """Check ``uri`` now if it was idle, else once changes pause (debounced, leading and trailing edge)."""
        loop = asyncio.get_running_loop()
        handle = self.pending.pop(uri, None)
        if handle is not None:
            handle.cancel()
        idle = handle is None and loop.time() - self.last_change.get(uri, float("-inf")) > DEBOUNCE_S
        self.last_change[uri] = loop.time()
        self.pending[uri] = loop.call_later(0 if idle else DEBOUNCE_S, self.publish, uri)


def path_of(uri: str) -> str:
    """The file path of a ``file:`` URI (its suffix picks the form; Windows drives handled by pygls); an unsaved
    buffer (``untitled:Untitled-1``) keeps the URI's path part."""
    return to_fs_path(uri) or unquote(urlparse(uri).path or uri)


def to_lsp_range(document: TextDocument, span: Span) -> types.Range:
    start = document.position_to_client_units(ServerTextPosition(span.line, span.start))
    end = document.position_to_client_units(ServerTextPosition(span.last_line, span.end))
    return types.Range(start=start, end=end)


def to_lsp_diagnostic(document: TextDocument, current: Analysis, diagnostic) -> types.Diagnostic:
    span = diagnostic_span(current.lines, diagnostic)
    return types.Diagnostic(
        range=to_lsp_range(document, span),
        message=cli_words(diagnostic),
        severity=SEVERITY.get(diagnostic.severity, types.DiagnosticSeverity.Error),
        code=diagnostic.code,
        source="npc",
        data={"pointer": diagnostic.pointer},
    )


def cli_words(diagnostic) -> str:
    """What `npc validate` prints after ``file:line:col:`` — the pointer and the message (a broken plugin stops
    the CLI with its message alone)."""
    if diagnostic.code == "plugin":
        return diagnostic.message
    return str(diagnostic)[len(diagnostic.location()) + 2 :]


def server_position(document: TextDocument, position: types.Position) -> tuple[int, int]:
    found = document.position_from_client_units(position)
    return found.line, found.character


def guarded(default: Any) -> Callable[[Callable], Callable]:
    """A request handler that logs a failure (a bug in npc) and answers ``default``, so the editor always gets an
    answer and the server keeps running."""

    def wrap(handler: Callable) -> Callable:
        @functools.wraps(handler)
        def answer(ls: NpcLanguageServer, params: Any) -> Any:
            try:
                return handler(ls, params)
            except Exception:
                logger.exception("%s failed", handler.__name__)
                return default

        return answer

    return wrap


def create_server() -> NpcLanguageServer:
    server = NpcLanguageServer()

    @server.feature(types.TEXT_DOCUMENT_DID_OPEN)
    def did_open(ls: NpcLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
        ls.publish(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
    def did_change(ls: NpcLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri)

    @server.feature(types.TEXT_DOCUMENT_DID_SAVE)
    def did_save(ls: NpcLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
        ls.schedule(params.text_document.uri)  # a saved generated module may now be there to jump to

    @server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
    def did_close(ls: NpcLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
        uri = params.text_document.uri
        handle = ls.pending.pop(uri, None)
        if handle is not None:
            handle.cancel()
        ls.analyses.pop(uri, None)
        ls.last_change.pop(uri, None)
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))

    @server.feature(types.TEXT_DOCUMENT_HOVER)
    @guarded(None)
    def on_hover(ls: NpcLanguageServer, params: types.HoverParams) -> types.Hover | None:
        document, current = ls.analysis(params.text_document.uri)
        line, col = server_position(document, params.position)
        found = hover(current, line, col)
        if found is None:
            return None
        markdown, span = found
        content = types.MarkupContent(kind=types.MarkupKind.Markdown, value=markdown)
        return types.Hover(contents=content, range=to_lsp_range(document, span) if span else None)

    @server.feature(
        types.TEXT_DOCUMENT_COMPLETION,
        types.CompletionOptions(trigger_characters=[":", '"', "(", ","]),
    )
    @guarded(types.CompletionList(is_incomplete=False, items=[]))
    def on_completion(ls: NpcLanguageServer, params: types.CompletionParams) -> types.CompletionList:
        document, current = ls.analysis(params.text_document.uri)
        line, col = server_position(document, params.position)
        return types.CompletionList(is_incomplete=False, items=completions(current, line, col))

    @server.feature(
        types.TEXT_DOCUMENT_CODE_ACTION,
        types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix, types.CodeActionKind.Source]),
    )
    @guarded([])
    def on_code_action(ls: NpcLanguageServer, params: types.CodeActionParams) -> list[types.CodeAction]:
        document, current = ls.analysis(params.text_document.uri)
        start = server_position(document, params.range.start)
        end = server_position(document, params.range.end)
        return code_actions(
            current,
            document,
            start,
            end,
            lambda span: to_lsp_range(document, span),
            lambda diagnostic: to_lsp_diagnostic(document, current, diagnostic),
        )

    @server.feature(types.TEXT_DOCUMENT_FORMATTING)
    @guarded(None)
    def on_formatting(ls: NpcLanguageServer, params: types.DocumentFormattingParams) -> list[types.TextEdit] | None:
        document, current = ls.analysis(params.text_document.uri)
        return format_document(current, document)

    @server.feature(types.TEXT_DOCUMENT_DEFINITION)
    @guarded(None)
    def on_definition(ls: NpcLanguageServer, params: types.DefinitionParams) -> types.Location | None:
        document, current = ls.analysis(params.text_document.uri)
        line, col = server_position(document, params.position)
        return definition(current, line, col)

    return server


def serve() -> int:
    """Run the server on stdin/stdout until the client says exit."""
    logging.basicConfig(level=logging.WARNING, format="npc lsp: %(levelname)s: %(message)s")
    create_server().start_io()
    return 0
