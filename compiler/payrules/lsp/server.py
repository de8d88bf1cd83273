"""LSP messages over stdio ↔ `lsp.analysis`: the pygls wiring of `payrules lsp`.

Only this module imports pygls and lsprotocol; positions are converted here between the
client's units (UTF-16 unless negotiated otherwise) and the characters of a `Source`.
"""

from __future__ import annotations

import os
from pathlib import Path

from lsprotocol import types
from pygls.lsp.server import LanguageServer
from pygls.uris import from_fs_path, to_fs_path
from pygls.workspace import TextDocument
from pygls.workspace.position_codec import PositionCodec

from payrules import __version__
from payrules.diagnostics import Diagnostic, Severity
from payrules.lsp import analysis
from payrules.source import Source, Span

SERVER_NAME = "payrules"
_KINDS = {
    "keyword": types.CompletionItemKind.Keyword,
    "snippet": types.CompletionItemKind.Snippet,
    "set": types.CompletionItemKind.Variable,
    "value": types.CompletionItemKind.Constant,
    "credential": types.CompletionItemKind.EnumMember,
    "modifier": types.CompletionItemKind.EnumMember,
    "include": types.CompletionItemKind.File,
    "field": types.CompletionItemKind.Field,
}


class PayrulesServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__(SERVER_NAME, __version__, text_document_sync_kind=types.TextDocumentSyncKind.Full)
        self.root = Path.cwd()

    def path_of(self, uri: str) -> Path:
        fs = to_fs_path(uri)
        return Path(fs) if fs else self.root / uri.rsplit("/", 1)[-1]

    def analysis_workspace(self) -> analysis.Workspace:
        texts = {self.path_of(doc.uri).resolve(): doc.source for doc in self.workspace.text_documents.values()}
        return analysis.Workspace(self.root, texts)

    def name_of(self, uri: str) -> str:
        return self.analysis_workspace().name(self.path_of(uri))

    def analyse(self, doc: TextDocument) -> analysis.Analysis:
        return analysis.Analysis.of(self.name_of(doc.uri), doc.source)

    def publish(self, doc: TextDocument) -> None:
        found = analysis.lint_document(self.analysis_workspace(), self.path_of(doc.uri), doc.source)
        name = self.name_of(doc.uri)
        written = analysis.Analysis.of(name, doc.source).written
        diagnostics = [_diagnostic(d, shown, self) for d, shown in analysis.located(found, written, name)]
        self.text_document_publish_diagnostics(
            types.PublishDiagnosticsParams(uri=doc.uri, diagnostics=diagnostics, version=doc.version))

    def publish_folder(self, uri: str) -> None:
        """The document, then the other open rule files of its folder (E107 between them may change)."""
        folder = self.path_of(uri).resolve().parent
        self.publish(self.workspace.get_text_document(uri))
        for other in list(self.workspace.text_documents.values()):
            if other.uri != uri and self.path_of(other.uri).resolve().parent == folder:
                self.publish(other)

    def offset(self, doc: TextDocument, source: Source, position: types.Position) -> int:
        server = self.workspace.position_codec.position_from_client_units(doc.lines, position)
        lines = source.text.split("\n")
        line = min(server.line, len(lines) - 1)
        return source.line_start(line + 1) + min(server.character, len(lines[line]))

    def location(self, span: Span) -> types.Location:
        path = self.analysis_workspace().path(span.file)
        uri = from_fs_path(str(path)) if path is not None else span.file
        return types.Location(uri=uri or span.file, range=_range(span, self.workspace.position_codec))


def _position(source: Source, offset: int, codec: PositionCodec) -> types.Position:
    line, column = source.line_col(offset)
    return types.Position(line=line - 1, character=codec.client_num_units(source.line_text(line)[: column - 1]))


def _range(span: Span, codec: PositionCodec) -> types.Range:
    return types.Range(start=_position(span.source, span.start, codec), end=_position(span.source, span.end, codec))


def _diagnostic(d: Diagnostic, shown: Span, server: PayrulesServer) -> types.Diagnostic:
    """`d` shown at `shown`: its own span, or the include line of a finding in an included file."""
    elsewhere = shown is not d.span
    related = [types.DiagnosticRelatedInformation(location=server.location(d.span), message=d.message)] \
        if elsewhere else []
    if d.help:
        related.append(types.DiagnosticRelatedInformation(location=server.location(d.span), message=f"help: {d.help}"))
    suggestion = None if elsewhere else analysis.suggestion(d)
    return types.Diagnostic(
        range=_range(shown, server.workspace.position_codec), code=d.code, source=SERVER_NAME,
        message=f"in {d.span}: {d.message}" if elsewhere else d.message, related_information=related or None,
        severity=types.DiagnosticSeverity.Error if d.severity is Severity.ERROR else types.DiagnosticSeverity.Warning,
        data={"suggestion": suggestion} if suggestion else None)


server = PayrulesServer()


@server.feature(types.INITIALIZED)
def initialized(ls: PayrulesServer, params: types.InitializedParams) -> None:
    # Names are shown, and includes resolved, from the workspace root, as `payrules lint` run there.
    root = ls.workspace.root_path
    if root and Path(root).is_dir():
        ls.root = Path(root)
        os.chdir(root)


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: PayrulesServer, params: types.DidOpenTextDocumentParams) -> None:
    ls.publish_folder(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: PayrulesServer, params: types.DidChangeTextDocumentParams) -> None:
    ls.publish_folder(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: PayrulesServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.publish_folder(params.text_document.uri)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: PayrulesServer, params: types.DidCloseTextDocumentParams) -> None:
    ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=params.text_document.uri, diagnostics=[]))


@server.feature(types.TEXT_DOCUMENT_HOVER)
def hover(ls: PayrulesServer, params: types.HoverParams) -> types.Hover | None:
    doc = ls.workspace.get_text_document(params.text_document.uri)
    found = ls.analyse(doc)
    answer = analysis.hover(found, ls.offset(doc, found.source, params.position))
    if answer is None:
        return None
    text, span = answer
    return types.Hover(contents=types.MarkupContent(kind=types.MarkupKind.Markdown, value=text),
                       range=_range(span, ls.workspace.position_codec))


@server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=['"']))
def completion(ls: PayrulesServer, params: types.CompletionParams) -> types.CompletionList:
    doc = ls.workspace.get_text_document(params.text_document.uri)
    found = ls.analyse(doc)
    offset = ls.offset(doc, found.source, params.position)
    line_before = found.source.text[found.source.line_start(found.source.line_col(offset)[0]):offset]
    items = [types.CompletionItem(
        label=item.label, kind=_KINDS[item.kind], detail=item.detail, sort_text=f"{order:03d}",
        insert_text=item.insert,
        insert_text_format=types.InsertTextFormat.Snippet if item.kind == "snippet" else None)
        for order, item in enumerate(analysis.completions(found, line_before))]
    return types.CompletionList(is_incomplete=False, items=items)


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
def definition(ls: PayrulesServer, params: types.DefinitionParams) -> types.Location | None:
    doc = ls.workspace.get_text_document(params.text_document.uri)
    found = ls.analyse(doc)
    target = analysis.definition(found, ls.offset(doc, found.source, params.position))
    if target is None:
        return None
    if isinstance(target, Span):
        return ls.location(target)
    path = ls.analysis_workspace().path(target)
    if path is None or not path.is_file():
        return None
    start = types.Position(line=0, character=0)
    return types.Location(uri=from_fs_path(str(path)) or str(path), range=types.Range(start=start, end=start))


@server.feature(types.TEXT_DOCUMENT_FORMATTING)
def formatting(ls: PayrulesServer, params: types.DocumentFormattingParams) -> list[types.TextEdit] | None:
    doc = ls.workspace.get_text_document(params.text_document.uri)
    formatted = analysis.format_document(doc.source, ls.name_of(doc.uri))
    if formatted is None or formatted == doc.source:
        return None if formatted is None else []
    end = types.Position(line=len(doc.lines), character=0)
    return [types.TextEdit(range=types.Range(start=types.Position(line=0, character=0), end=end), new_text=formatted)]


@server.feature(types.TEXT_DOCUMENT_CODE_ACTION,
                types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]))
def code_action(ls: PayrulesServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    actions: list[types.CodeAction] = []
    for d in params.context.diagnostics:
        data = d.data if isinstance(d.data, dict) else {}
        suggestion = data.get("suggestion")
        if d.source != SERVER_NAME or not isinstance(suggestion, str):
            continue
        edit = types.TextEdit(range=d.range, new_text=suggestion)
        actions.append(types.CodeAction(
            title=f"Replace with `{suggestion}`", kind=types.CodeActionKind.QuickFix, diagnostics=[d],
            is_preferred=True, edit=types.WorkspaceEdit(changes={params.text_document.uri: [edit]})))
    return actions


def main() -> None:
    server.start_io()
