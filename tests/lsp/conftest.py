"""An editor stand-in: pygls's LSP client drives `npc lsp` over stdio, one server process per test module."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
import pytest_asyncio

pytest.importorskip("pygls", reason="npc lsp needs the lsp extra (pip install -e '.[lsp]')")

from lsprotocol import types  # noqa: E402
from pygls.lsp.client import LanguageClient  # noqa: E402

# Generous: the first check of a spec imports the registry (~1 s), and CI machines are shared.
WAIT_S = 60


class Editor:
    """What a test does with the server: open and change documents, ask for features, read what was published."""

    def __init__(self, client: LanguageClient) -> None:
        self.client = client
        self.published: list[types.PublishDiagnosticsParams] = []
        self.messages: list[str] = []
        self.arrived = asyncio.Event()
        self.versions: dict[str, int] = {}

    async def open(self, path: Path, text: str | None = None, language: str = "yaml") -> list[types.Diagnostic]:
        uri = path.resolve().as_uri()
        text = path.read_text(encoding="utf-8") if text is None else text
        self.versions[uri] = 1
        item = types.TextDocumentItem(uri=uri, language_id=language, version=1, text=text)
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(text_document=item))
        return await self.diagnostics(uri, 1)

    async def replace(self, uri: str, text: str, *, wait: bool = True) -> list[types.Diagnostic] | None:
        """A full-text change (as editors send for a paste or an undo)."""
        return await self._change(uri, [types.TextDocumentContentChangeWholeDocument(text=text)], wait)

    async def edit(self, uri: str, start: tuple[int, int], end: tuple[int, int], text: str) -> list[types.Diagnostic]:
        """An incremental change, as editors send for a keystroke."""
        where = types.Range(start=types.Position(*start), end=types.Position(*end))
        return await self._change(uri, [types.TextDocumentContentChangePartial(range=where, text=text)], True)

    async def _change(self, uri: str, changes: list, wait: bool) -> list[types.Diagnostic] | None:
        self.versions[uri] += 1
        version = self.versions[uri]
        document = types.VersionedTextDocumentIdentifier(uri=uri, version=version)
        self.client.text_document_did_change(
            types.DidChangeTextDocumentParams(text_document=document, content_changes=changes)
        )
        return await self.diagnostics(uri, version) if wait else None

    async def diagnostics(self, uri: str, version: int) -> list[types.Diagnostic]:
        """The diagnostics published for ``version`` of ``uri`` (waits for them)."""
        return await asyncio.wait_for(self._published(uri, version), WAIT_S)

    async def _published(self, uri: str, version: int) -> list[types.Diagnostic]:
        while True:
            for params in reversed(self.published):
                if params.uri == uri and params.version == version:
                    return list(params.diagnostics)
            self.arrived.clear()
            await self.arrived.wait()

    def close(self, uri: str) -> None:
        identifier = types.TextDocumentIdentifier(uri=uri)
        self.client.text_document_did_close(types.DidCloseTextDocumentParams(text_document=identifier))

    async def hover(self, uri: str, line: int, character: int) -> types.Hover | None:
        params = types.HoverParams(types.TextDocumentIdentifier(uri=uri), types.Position(line, character))
        return await self.client.text_document_hover_async(params)

    async def complete(self, uri: str, line: int, character: int) -> list[types.CompletionItem]:
        params = types.CompletionParams(types.TextDocumentIdentifier(uri=uri), types.Position(line, character))
        result = await self.client.text_document_completion_async(params)
        return list(result.items if isinstance(result, types.CompletionList) else result or [])

    async def actions(self, uri: str, start: tuple[int, int], end: tuple[int, int]) -> list[types.CodeAction]:
        where = types.Range(start=types.Position(*start), end=types.Position(*end))
        params = types.CodeActionParams(types.TextDocumentIdentifier(uri=uri), where, types.CodeActionContext([]))
        return list(await self.client.text_document_code_action_async(params) or [])

    async def format(self, uri: str) -> list[types.TextEdit] | None:
        options = types.FormattingOptions(tab_size=2, insert_spaces=True)
        params = types.DocumentFormattingParams(types.TextDocumentIdentifier(uri=uri), options)
        return await self.client.text_document_formatting_async(params)

    async def definition(self, uri: str, line: int, character: int):
        params = types.DefinitionParams(types.TextDocumentIdentifier(uri=uri), types.Position(line, character))
        return await self.client.text_document_definition_async(params)


async def start_editor() -> tuple[LanguageClient, Editor]:
    client = LanguageClient("npc-tests", "1")
    editor = Editor(client)

    @client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
    def published(params: types.PublishDiagnosticsParams) -> None:
        editor.published.append(params)
        editor.arrived.set()

    @client.feature(types.WINDOW_SHOW_MESSAGE)
    def shown(params: types.ShowMessageParams) -> None:
        editor.messages.append(params.message)

    @client.feature(types.WINDOW_LOG_MESSAGE)
    def logged(params: types.LogMessageParams) -> None:
        editor.messages.append(params.message)

    await client.start_io(sys.executable, "-m", "npc", "lsp")
    capabilities = types.ClientCapabilities(
        text_document=types.TextDocumentClientCapabilities(
            publish_diagnostics=types.PublishDiagnosticsClientCapabilities(version_support=True)
        )
    )
    await client.initialize_async(types.InitializeParams(capabilities=capabilities, process_id=None))
    client.initialized(types.InitializedParams())
    return client, editor


async def stop_editor(client: LanguageClient) -> str:
    """Shut the server down as an editor does; its stderr (where a crash would show)."""
    await client.shutdown_async(None)
    client.exit(None)
    process = client._server  # pygls keeps the subprocess it started here
    await asyncio.wait_for(process.wait(), WAIT_S)
    stderr = await asyncio.wait_for(process.stderr.read(), WAIT_S) if process.stderr else b""
    await client.stop()
    return stderr.decode("utf-8", "replace")


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def editor():
    client, session = await start_editor()
    yield session
    stderr = await stop_editor(client)
    assert "Traceback" not in stderr and "ERROR" not in stderr, stderr
    assert not [m for m in session.messages if "error" in m.lower()], session.messages
