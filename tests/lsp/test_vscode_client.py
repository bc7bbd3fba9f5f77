"""The VS Code extension: its manifest holds together, and activating it (under Node, with `vscode` and
`vscode-languageclient` stood in for) starts `npc lsp` over stdio for .npc, YAML and JSON documents."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from helpers import REPO

EXTENSION = REPO / "editors" / "vscode"
NODE = shutil.which("node")

STUB_VSCODE = """
const settings = {"server.command": "${workspaceFolder}/.venv/bin/npc"};
module.exports = {
  workspace: {
    workspaceFolders: [{uri: {fsPath: "/work/project"}}],
    getConfiguration: () => ({get: (key, fallback) => (key in settings ? settings[key] : fallback)}),
    onDidChangeConfiguration: () => ({dispose() {}}),
  },
  commands: {registerCommand: (name) => ({name, dispose() {}})},
};
"""
STUB_CLIENT = """
class LanguageClient {
  constructor(id, name, server, options) { Object.assign(this, {id, name, server, options}); }
  async start() { globalThis.started = this; }
  async stop() {}
}
module.exports = {LanguageClient};
"""
RUN = """
const extension = require("./extension.js");
const context = {subscriptions: []};
extension.activate(context).then(() => {
  const c = globalThis.started;
  console.log(JSON.stringify({id: c.id, server: c.server, selector: c.options.documentSelector,
                              commands: context.subscriptions.map((s) => s.name).filter(Boolean)}));
});
"""


def test_the_manifest_names_files_that_exist_and_the_languages_the_client_serves():
    manifest = json.loads((EXTENSION / "package.json").read_text(encoding="utf-8"))
    assert (EXTENSION / manifest["main"]).is_file()
    assert (REPO / "editors" / "npc.tmLanguage.json").is_file()  # copied beside the manifest on install
    assert set(manifest["activationEvents"]) == {"onLanguage:npc", "onLanguage:yaml", "onLanguage:json"}
    assert "vscode-languageclient" in manifest["dependencies"]
    assert [c["command"] for c in manifest["contributes"]["commands"]] == ["npc.restartServer"]


@pytest.mark.skipif(NODE is None, reason="Node.js is not installed")
def test_activating_the_extension_starts_npc_lsp_for_the_three_forms(tmp_path):
    shutil.copy(EXTENSION / "extension.js", tmp_path / "extension.js")
    (tmp_path / "node_modules" / "vscode").mkdir(parents=True)
    (tmp_path / "node_modules" / "vscode" / "index.js").write_text(STUB_VSCODE, encoding="utf-8")
    (tmp_path / "node_modules" / "vscode-languageclient").mkdir()
    (tmp_path / "node_modules" / "vscode-languageclient" / "node.js").write_text(STUB_CLIENT, encoding="utf-8")
    run = subprocess.run([NODE, "-e", RUN], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    started = json.loads(run.stdout)
    assert started["id"] == "npc"
    assert started["server"]["run"] == {"command": "/work/project/.venv/bin/npc", "args": ["lsp"]}
    assert [s["language"] for s in started["selector"]] == ["npc", "yaml", "json"]
    assert started["commands"] == ["npc.restartServer"]
