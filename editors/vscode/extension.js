// Starts `payrules lsp` for *.payer files; the grammar in syntaxes/ does the highlighting.
const vscode = require("vscode");
const { LanguageClient, TransportKind } = require("vscode-languageclient/node");

let client;

function activate(context) {
  const [command, ...args] = vscode.workspace.getConfiguration("payrules").get("command");
  client = new LanguageClient(
    "payrules",
    "payrules",
    { command, args, transport: TransportKind.stdio },
    {
      documentSelector: [{ scheme: "file", language: "payer" }, { scheme: "untitled", language: "payer" }],
      synchronize: { fileEvents: vscode.workspace.createFileSystemWatcher("**/*.payer") },
    }
  );
  context.subscriptions.push(client);
  return client.start();
}

function deactivate() {
  return client ? client.stop() : undefined;
}

module.exports = { activate, deactivate };
