"""`payrules lsp` driven as an editor drives it: a real client over stdio, one editing session."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from lsprotocol import types
from pygls.lsp.client import LanguageClient
from pygls.uris import from_fs_path

from payrules.compiler import diagnose
from payrules.lsp import analysis, lsp_command
from payrules.modules import stdlib_root
from payrules.source import Source


TIMEOUT = 20.0

ACME = """\
payer ACME "Acme Health" effective from 2024-01-01 to 2024-12-31
include "stdlib/massage-session-cap-45"
set cmt = 98940-98942
onyl 97140
requires modifier 59 or XS on massage with cmt same day
requires LTM NPI for massage
"""

ACME_FIXED = """\
payer ACME "Acme Health" effective from 2024-01-01 to 2024-12-31
include "stdlib/massage-session-cap-45"
set cmt = 98940-98942
only  massage,98940-98942
requires modifier 59 or XS on massage with cmt same day
requires LMT NPI for massage   # delegated work
"""

LATER = 'payer acme effective from 2024-06-01\nonly 97140\n'


class Editor:
    """A language client that remembers the latest diagnostics of every document."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.client = LanguageClient("payrules-tests", "1")
        self.diagnostics: dict[str, types.PublishDiagnosticsParams] = {}
        self.arrived = asyncio.Event()

        @self.client.feature(types.TEXT_DOCUMENT_PUBLISH_DIAGNOSTICS)
        def published(params: types.PublishDiagnosticsParams) -> None:
            self.diagnostics[params.uri] = params
            self.arrived.set()

    def uri(self, name: str) -> str:
        uri = from_fs_path(str(self.root / name))
        assert uri is not None
        return uri

    async def start(self) -> types.InitializeResult:
        await self.client.start_io(sys.executable, "-m", "payrules.lsp", cwd=str(self.root))
        result = await asyncio.wait_for(self.client.initialize_async(types.InitializeParams(
            capabilities=types.ClientCapabilities(), root_uri=self.uri("."),
            workspace_folders=[types.WorkspaceFolder(uri=self.uri("."), name="payers")])), TIMEOUT)
        self.client.initialized(types.InitializedParams())
        return result

    async def stop(self) -> None:
        await asyncio.wait_for(self.client.shutdown_async(None), TIMEOUT)
        self.client.exit(None)
        await self.client.stop()

    async def published(self, name: str, version: int) -> list[types.Diagnostic]:
        """The diagnostics the server publishes for this version of the document."""
        uri = self.uri(name)

        async def wait() -> list[types.Diagnostic]:
            while (uri not in self.diagnostics or self.diagnostics[uri].version != version):
                self.arrived.clear()
                await self.arrived.wait()
            return list(self.diagnostics[uri].diagnostics)

        return await asyncio.wait_for(wait(), TIMEOUT)

    def open(self, name: str, text: str) -> None:
        self.client.text_document_did_open(types.DidOpenTextDocumentParams(
            text_document=types.TextDocumentItem(uri=self.uri(name), language_id="payer", version=1, text=text)))

    def change(self, name: str, version: int, text: str) -> None:
        self.client.text_document_did_change(types.DidChangeTextDocumentParams(
            text_document=types.VersionedTextDocumentIdentifier(uri=self.uri(name), version=version),
            content_changes=[types.TextDocumentContentChangeWholeDocument(text=text)]))

    def at(self, name: str, line: int, character: int) -> dict[str, Any]:
        return {"text_document": types.TextDocumentIdentifier(uri=self.uri(name)),
                "position": types.Position(line=line, character=character)}


def position(text: str, needle: str, into: int = 1) -> tuple[int, int]:
    """Line and character (0-based) of a point `into` characters into the first `needle`."""
    offset = text.index(needle) + into
    return text.count("\n", 0, offset), offset - (text.rfind("\n", 0, offset) + 1)


async def editing_session(root: Path) -> dict[str, Any]:
    """Replay an edit: open a file with errors, take a quick fix, fix it, hover, complete,
    jump, format, and open a second file of the same payer. Every answer, by step."""
    editor = Editor(root)
    answers: dict[str, Any] = {}
    init = await editor.start()
    answers["capabilities"] = init.capabilities
    try:
        editor.open("payers/acme.payer", ACME)
        answers["diagnostics-on-open"] = await editor.published("payers/acme.payer", 1)

        suggested = [d for d in answers["diagnostics-on-open"] if d.data]
        answers["quick-fixes"] = await editor.client.text_document_code_action_async(types.CodeActionParams(
            text_document=types.TextDocumentIdentifier(uri=editor.uri("payers/acme.payer")),
            range=types.Range(start=types.Position(line=0, character=0), end=types.Position(line=6, character=0)),
            context=types.CodeActionContext(diagnostics=suggested)))

        editor.change("payers/acme.payer", 2, ACME_FIXED)
        answers["diagnostics-after-fix"] = await editor.published("payers/acme.payer", 2)

        for step, (needle, into) in {"hover-set-name": ("massage,", 2), "hover-range": ("98940-98942", 3),
                                     "hover-credential": ("LMT", 1), "hover-modifier": ("XS", 1),
                                     "hover-statement": ("requires modifier", 3),
                                     "hover-include": ("stdlib/", 3)}.items():
            line, character = position(ACME_FIXED, needle, into)
            answers[step] = await editor.client.text_document_hover_async(
                types.HoverParams(**editor.at("payers/acme.payer", line, character)))

        line, character = position(ACME_FIXED, "massage,", 1)
        answers["definition-included-set"] = await editor.client.text_document_definition_async(
            types.DefinitionParams(**editor.at("payers/acme.payer", line, character)))
        line, character = position(ACME_FIXED, "with cmt", 6)
        answers["definition-set"] = await editor.client.text_document_definition_async(
            types.DefinitionParams(**editor.at("payers/acme.payer", line, character)))
        line, character = position(ACME_FIXED, "stdlib/", 3)
        answers["definition-include"] = await editor.client.text_document_definition_async(
            types.DefinitionParams(**editor.at("payers/acme.payer", line, character)))

        completing = ACME_FIXED + "not payable by L"
        editor.change("payers/acme.payer", 3, completing)
        await editor.published("payers/acme.payer", 3)
        completion = await editor.client.text_document_completion_async(types.CompletionParams(
            **editor.at("payers/acme.payer", 6, len("not payable by L"))))
        assert isinstance(completion, types.CompletionList)
        answers["completion"] = completion
        editor.change("payers/acme.payer", 4, ACME_FIXED + 'include "')
        await editor.published("payers/acme.payer", 4)
        answers["completion-include"] = await editor.client.text_document_completion_async(types.CompletionParams(
            **editor.at("payers/acme.payer", 6, len('include "'))))
        editor.change("payers/acme.payer", 6, ACME_FIXED + "one of 97140 per session unless modifier ")
        await editor.published("payers/acme.payer", 6)
        answers["completion-modifier"] = await editor.client.text_document_completion_async(types.CompletionParams(
            **editor.at("payers/acme.payer", 6, len("one of 97140 per session unless modifier "))))

        editor.change("payers/acme.payer", 7, ACME_FIXED)
        await editor.published("payers/acme.payer", 7)
        answers["formatting"] = await editor.client.text_document_formatting_async(types.DocumentFormattingParams(
            text_document=types.TextDocumentIdentifier(uri=editor.uri("payers/acme.payer")),
            options=types.FormattingOptions(tab_size=4, insert_spaces=True)))

        # A second file of the same payer, never saved: E107 against the open file's dates.
        editor.open("payers/acme-later.payer", LATER)
        answers["diagnostics-overlap"] = await editor.published("payers/acme-later.payer", 1)
    finally:
        await editor.stop()
    return answers


def normalised(value: Any, root: Path) -> Any:
    """Answers as JSON, with the workspace and the shipped rule files under stable names."""
    text = json.dumps(value, default=lambda o: _converter().unstructure(o), indent=2, sort_keys=True)
    for path, shown in ((root, "file:///WORKSPACE"), (Path(str(stdlib_root())), "file:///STDLIB")):
        text = text.replace(str(from_fs_path(str(path))), shown)
    return text + "\n"


def _converter() -> Any:
    from lsprotocol.converters import get_converter

    return get_converter()


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    root = tmp_path_factory.mktemp("workspace")
    (root / "payers").mkdir()
    (root / "payers" / "acme.payer").write_text(ACME, encoding="utf-8")
    return asyncio.run(editing_session(root)), root


STEPS = ["capabilities", "diagnostics-on-open", "quick-fixes", "diagnostics-after-fix", "hover-set-name",
         "hover-range", "hover-credential", "hover-modifier", "hover-statement", "hover-include",
         "definition-included-set", "definition-set", "definition-include", "completion", "completion-include", "completion-modifier",
         "formatting", "diagnostics-overlap"]


@pytest.mark.parametrize("step", STEPS)
def test_editing_session_answers(session: tuple[dict[str, Any], Path], step: str, json_snapshot: Any) -> None:
    answers, root = session
    assert normalised(answers[step], root) == json_snapshot(name=step)


def test_diagnostics_match_payrules_lint(session: tuple[dict[str, Any], Path]) -> None:
    answers, _ = session
    expected = analysis.lint_document(analysis.Workspace(Path(".")), Path("payers/acme.payer"), ACME)
    found = [(d.code, d.message, d.range.start.line + 1, d.range.start.character + 1)
             for d in answers["diagnostics-on-open"]]
    from payrules.lint import lint_source

    linted = lint_source(Source("payers/acme.payer", ACME))
    assert found == [(d.code, d.message, d.span.line, d.span.column) for d in linted]
    assert [d.code for d in expected] == [d.code for d in linted] == ["E002", "E102"]


def test_fix_clears_every_diagnostic(session: tuple[dict[str, Any], Path]) -> None:
    answers, _ = session
    assert answers["diagnostics-on-open"] and answers["diagnostics-after-fix"] == []


def test_formatting_gives_what_payrules_fmt_gives(session: tuple[dict[str, Any], Path]) -> None:
    from payrules.fmt import format_text

    answers, _ = session
    (edit,) = answers["formatting"]
    assert edit.new_text == format_text(ACME_FIXED) != ACME_FIXED


def test_every_snippet_inserts_a_valid_line() -> None:
    """A template kept as its placeholders is a line the compiler accepts."""
    for snippet in analysis.SNIPPETS:
        line = analysis.snippet_text(snippet.body)
        text = line if line.startswith("payer") else f"payer T\n{line}\n"
        _, found = diagnose(Source("t.payer", text))
        assert [d.code for d in found if d.code.startswith("E")] == [], (snippet.label, line)


def test_every_statement_kind_has_a_snippet() -> None:
    from payrules import ast

    written = [analysis.Analysis.of("t.payer", f"payer T\n{analysis.snippet_text(s.body)}\n")
               for s in analysis.SNIPPETS]
    kinds = {type(r.statement).kind for a in written for r in a.written.rules}
    assert kinds == {cls.kind for cls in ast.StatementNode.__subclasses__()}


def test_modifier_meanings_ship_with_their_source() -> None:
    from importlib import resources

    text = resources.files("payrules").joinpath("data/modifiers.csv").read_text(encoding="utf-8")
    assert text.startswith("#") and "Source:" in text.split("modifier,meaning")[0]
    meanings = analysis.modifiers()
    assert {"59", "XS", "GP", "AT", "25"} <= set(meanings) and all(meanings.values())


def test_lsp_command_without_the_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pygls.lsp.server", None)
    monkeypatch.delitem(sys.modules, "payrules.lsp.server", raising=False)
    result = CliRunner().invoke(lsp_command, [])
    assert result.exit_code == 1
    assert "pip install 'payrules[lsp]'" in result.output


def test_importing_the_command_does_not_import_pygls() -> None:
    import subprocess

    code = "import sys, payrules.cli, payrules.lsp; print(sorted(m for m in sys.modules if m.startswith('pygls')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
