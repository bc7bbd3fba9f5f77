// VS Code client of `npc lsp`: starts the server over stdio for .npc files and for YAML and JSON documents
// (the server itself decides which are specs: a top-level `model:` key), and restarts it on request or when
// its settings change. Plain JavaScript, so the extension needs no build step: `npm install` and copy it.
"use strict";

const vscode = require("vscode");
const { LanguageClient } = require("vscode-languageclient/node");

const SELECTOR = ["npc", "yaml", "json"].map((language) => ({ scheme: "file", language }));
let client;

function serverOptions() {
  const settings = vscode.workspace.getConfiguration("npc");
  const folder = vscode.workspace.workspaceFolders?.[0]?.uri.fsPath ?? "";
  const command = settings.get("server.command", "npc").replace("${workspaceFolder}", folder);
  const executable = { command, args: settings.get("server.args", ["lsp"]) };
  return { run: executable, debug: executable };
}

async function start() {
  client = new LanguageClient("npc", "npc model specs", serverOptions(), { documentSelector: SELECTOR });
  await client.start();
}

async function restart() {
  if (client) {
    await client.stop();
  }
  await start();
}

async function activate(context) {
  context.subscriptions.push(
    vscode.commands.registerCommand("npc.restartServer", restart),
    vscode.workspace.onDidChangeConfiguration((event) => {
      if (event.affectsConfiguration("npc.server")) {
        restart();
      }
    }),
  );
  await start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
