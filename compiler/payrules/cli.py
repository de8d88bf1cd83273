"""Command line → api calls → rendered output on stdout, diagnostics on stderr, and an exit code."""

from __future__ import annotations

import contextlib
import datetime
import difflib
import enum
import gc
import io
import os
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import attrs
import click

from payrules import __version__, api, fmt, formats, lint, render, standalone, workers
from payrules.compiler import diagnose
from payrules.diagnostics import CompileError, InputError, Severity
from payrules.domain import npi_is_valid
from payrules.masking import KEY_ENVIRONMENT, MaskKeyError, PatientMask, load_key
from payrules.records import Columns
from payrules.render import printable
from payrules.runner import Tally

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3

LARGE_INPUT_LINES = 50_000
"""From this size on, a progress bar is shown on a terminal, and ungrouped input is pointed out."""


class OutputFormat(enum.Enum):
    TEXT = "text"
    JSON = "json"
    JSONL = "jsonl"
    CSV = "csv"
    X835 = "835"


@attrs.frozen
class Remittance:
    """What `--format 835` is told about the remittance beyond the decisions."""

    payee_npi: str | None = None
    payee_name: str | None = None
    date: datetime.date | None = None
    control_number: int = 1


_EPILOG = """\b
Examples:
  payrules check visits.csv --rules payers/
  payrules check visits.jsonl --rules payers/ash.payer --format json
  payrules check export.csv --rules payers/ --columns export-columns.toml --format csv -o decisions.csv
  payrules check claims.837 --rules payers/ --payer-map payers.toml
  payrules check claims.837 --rules payers/ --payer-map payers.toml --format 835 -o remit.835
  payrules test payers/ --coverage
  payrules build payers/ -o payer_rules.py
  payrules compile payers/ash.payer
  payrules lint payers/ --format sarif -o payrules.sarif
  payrules fmt --check payers/
"""


@click.group(epilog=_EPILOG)
@click.version_option(__version__, prog_name="payrules")
def cli() -> None:
    """Payer rules for massage, manual therapy and chiropractic claims."""


@cli.command()
@click.argument("sessions", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--rules", "rules", required=True, type=click.Path(path_type=Path),
              help="A .payer rule file, or a folder searched for them.")
@click.option("--format", "output_format", type=click.Choice([f.value for f in OutputFormat]),
              default=OutputFormat.TEXT.value, show_default=True,
              help="How to write the decisions: text for people; json, jsonl or csv for programs; 835 for an "
              "X12 835 remittance advice, what each payer would send back (the lines not judged and the "
              "summary go to stderr).")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the decisions to this file instead of stdout.")
@click.option("--columns", "columns_file", type=click.Path(path_type=Path, dir_okay=False),
              help="A TOML file mapping session fields to the CSV's own headers ([columns]), and claim "
              "files' payer ids to the rule files' ([payers]).")
@click.option("--payer-map", "payer_map_file", type=click.Path(path_type=Path, dir_okay=False),
              help='A TOML file whose [payers] table maps the payer ids of 837P files (2010BB NM109) to the '
              'payer ids of the rule files, such as SX101 = "SUMMIT"; it wins over a [payers] table in '
              "--columns.")
@click.option("--history", "history", multiple=True, type=click.Path(path_type=Path, dir_okay=False),
              help="Earlier sessions (in any input format) that same-day rules and period limits count but "
              "that are not judged (repeatable).")
@click.option("--mask-patient-ids", "mask_ids", is_flag=True,
              help=f"Write each patient id as a keyed hash (HMAC-SHA256), in every format and on stderr; the "
              f"key comes from --mask-key-file or ${KEY_ENVIRONMENT}.")
@click.option("--mask-key-file", "mask_key_file", type=click.Path(path_type=Path, dir_okay=False),
              help="A file holding the secret key for --mask-patient-ids (at least 16 bytes).")
@click.option("--payee-npi", "payee_npi", metavar="NPI", callback=lambda _ctx, _param, value: _npi(value),
              help="With --format 835: the NPI of the provider paid (N1*PE); by default, per payer, the "
              "rendering NPI on most of its lines.")
@click.option("--payee-name", "payee_name", metavar="NAME", help="With --format 835: the payee's name (N1*PE N102).")
@click.option("--835-date", "remit_date", metavar="YYYY-MM-DD", callback=lambda _ctx, _param, value: _date(value),
              help="With --format 835: the payment and interchange date, YYYY-MM-DD; by default the latest "
              "date of service judged, so the same input gives the same file.")
@click.option("--interchange-control-number", "control_number", type=int, metavar="NUMBER",
              callback=lambda _ctx, _param, value: _control_number(value),
              help="With --format 835: the interchange control number (ISA13, GS06), 1 to 999999999; "
              "by default 1.")
@click.pass_context
def check(ctx: click.Context, sessions: tuple[Path, ...], rules: Path, output_format: str,
          output: Path | None, columns_file: Path | None, payer_map_file: Path | None, history: tuple[Path, ...],
          mask_ids: bool, mask_key_file: Path | None, payee_npi: str | None, payee_name: str | None,
          remit_date: datetime.date | None, control_number: int | None) -> None:
    """Judge the service lines in SESSIONS against payer rules.

    \b
    SESSIONS are files of service lines, in any of these formats:
      CSV (.csv), JSON (.json) or JSONL (.jsonl) session files;
      X12 837P claim files (.837, .x12, .edi, or any file whose content
        starts with ISA): each SV1 is a line to judge; needs payrules[x12].

    The decisions are written as text, JSON, JSONL, CSV, or an X12 835 remittance advice
    (--format 835).

    Input grouped by patient (all rows of a patient together) is judged one patient at a time,
    without holding the whole input in memory; other input is read whole first. A large
    grouped CSV file is judged in parts, one worker process per CPU, with the same output.

    Exit status: 0 every line paid in full, 1 some line denied, reduced or not judged,
    2 bad usage or unreadable input (including rule files with errors).
    """
    remittance = _remittance(ctx, OutputFormat(output_format), payee_npi, payee_name, remit_date, control_number)
    mask = _patient_mask(ctx, mask_ids, mask_key_file)
    with _user_errors(ctx, EXIT_USAGE):
        columns = Columns.load(columns_file) if columns_file else None
        if payer_map_file is not None:
            columns = (columns or Columns()).with_payers(formats.load_payer_map(payer_map_file))
        run = api.start_check(list(sessions), rules, columns, list(history))
        if not run.scan.grouped and run.scan.lines >= LARGE_INPUT_LINES:
            patient = run.scan.patient or ""
            click.echo(printable(
                f"note: the sessions are not grouped by patient (patient `{mask(patient) if mask else patient}` "
                f"appears again at {run.scan.regrouped_at}); reading all {run.scan.lines} lines into memory. "
                "Sort the rows by patient to judge them one patient at a time."), err=True)
        with _open_output(output) as out, _fewer_collections():
            tally = _write(run, OutputFormat(output_format), out, colour=output is None and _colour(sys.stdout),
                           mask=mask, remittance=remittance)
    ctx.exit(EXIT_OK if tally.paid == tally.lines_read else EXIT_FINDINGS)


def _npi(value: str | None) -> str | None:
    if value is None or npi_is_valid(value):
        return value
    if len(value) == 10 and value.isascii() and value.isdigit():
        raise click.BadParameter(f"`{value}` is not a valid NPI: its last digit is not the check digit of the "
                                 "other nine")
    raise click.BadParameter(printable(f"`{value}` is not an NPI: an NPI is 10 digits"))


def _date(value: str | None) -> datetime.date | None:
    if value is None:
        return None
    try:
        if len(value) == 10:
            return datetime.date.fromisoformat(value)
    except ValueError:
        pass
    raise click.BadParameter(printable(f"`{value}` is not a date written YYYY-MM-DD, such as 2024-03-31"))


def _control_number(value: int | None) -> int | None:
    if value is not None and not 1 <= value <= 999_999_999:
        raise click.BadParameter(f"{value} is not an interchange control number: use a number from 1 to "
                                 "999999999")
    return value


def _remittance(ctx: click.Context, output_format: OutputFormat, payee_npi: str | None, payee_name: str | None,
                remit_date: datetime.date | None, control_number: int | None) -> Remittance | None:
    """The 835 options, or None when the format is not 835; given with another format, they
    are a usage error rather than silently ignored."""
    given = {"--payee-npi": payee_npi, "--payee-name": payee_name, "--835-date": remit_date,
             "--interchange-control-number": control_number}
    if output_format is not OutputFormat.X835:
        named = [name for name, value in given.items() if value is not None]
        if named:
            raise click.UsageError(f"{', '.join(named)} {'apply' if len(named) > 1 else 'applies'} to --format "
                                   f"835 only; add --format 835 or leave {'them' if len(named) > 1 else 'it'} out",
                                   ctx)
        return None
    return Remittance(payee_npi, payee_name, remit_date, control_number or 1)


def _patient_mask(ctx: click.Context, mask_ids: bool, key_file: Path | None) -> PatientMask | None:
    """The mask `--mask-patient-ids` asks for, or None; a missing or weak key is a usage error,
    raised before anything is read or written."""
    if not mask_ids:
        if key_file is not None:
            # Without the flag nothing would be masked: say so rather than leak the ids.
            raise click.UsageError("--mask-key-file is given but --mask-patient-ids is not; add "
                                   "--mask-patient-ids to mask patient ids", ctx)
        return None
    try:
        return PatientMask(load_key(key_file))
    except MaskKeyError as error:
        raise click.UsageError(printable(str(error)), ctx) from None


def _write(run: api.CheckRun, output_format: OutputFormat, out: TextIO, colour: bool,
           mask: render.Mask | None = None, remittance: Remittance | None = None) -> Tally:
    writer: render.Writer
    if output_format is OutputFormat.X835:
        from payrules.formats.x835 import X835Writer  # only for this format

        given = remittance or Remittance()
        writer = X835Writer(out, mask=mask, errors=sys.stderr, payee_npi=given.payee_npi,
                            payee_name=given.payee_name, date=given.date, control_number=given.control_number)
    elif output_format is OutputFormat.JSON:
        writer = render.JsonWriter(out, mask=mask)
    elif output_format is OutputFormat.JSONL:
        writer = render.JsonlWriter(out, mask=mask)
    elif output_format is OutputFormat.CSV:
        writer = render.CsvWriter(out, mask=mask)
    else:
        writer = render.TextWriter(out, colour, mask=mask)
    tally = Tally()
    show_progress = _is_tty(sys.stderr) and run.scan.lines >= LARGE_INPUT_LINES
    with click.progressbar(length=run.scan.lines, label="Judging", file=sys.stderr if show_progress else _Null(),
                           show_pos=True) as bar:
        for done in workers.write(run, writer, tally):
            bar.update(done)
    writer.close(tally.summary())
    return tally


@contextlib.contextmanager
def _fewer_collections() -> Iterator[None]:
    """Judging makes millions of short-lived objects that reference counting frees; the cycle
    collector would walk them again and again. Run it less often, leave what exists before
    judging out of it (forked workers then share those pages), and restore it afterwards."""
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


@contextlib.contextmanager
def _user_errors(ctx: click.Context, compile_exit: int) -> Iterator[None]:
    """Print a rule file's diagnostics or an input error on stderr and exit; no traceback."""
    try:
        yield
    except CompileError as error:
        click.echo(render.diagnostics(error.diagnostics), err=True, nl=False)
        ctx.exit(compile_exit)
    except InputError as error:
        click.echo(f"error: {printable(str(error))}", err=True)
        ctx.exit(EXIT_USAGE)


@contextlib.contextmanager
def _open_output(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    try:
        stream = open(path, "w", encoding="utf-8", newline="")
    except OSError as error:
        raise InputError(f"{path}: cannot write ({error.strerror})") from None
    with stream:
        yield stream


class _Null(io.StringIO):
    """Where the progress bar goes when nobody is watching."""

    def isatty(self) -> bool:
        return False


@cli.command(name="compile")
@click.argument("rule_file", type=click.Path(path_type=Path))
@click.pass_context
def compile_command(ctx: click.Context, rule_file: Path) -> None:
    """Print the Python that payrules generates for RULE_FILE.

    Exit status: 0 compiled, 1 the rule file has errors, 2 bad usage or unreadable file.
    """
    with _user_errors(ctx, EXIT_FINDINGS):
        python = api.emit_python(api.read_source(rule_file))
    click.echo(python, nl=False)
    ctx.exit(EXIT_OK)


def _is_tty(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


@cli.command(name="test")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--coverage", is_flag=True, help="List the rules that no case exercised.")
@click.option("--format", "output_format", type=click.Choice(["text", "junit"]), default="text", show_default=True)
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False), help="Write to this file.")
@click.pass_context
def test_command(ctx: click.Context, paths: tuple[Path, ...], coverage: bool, output_format: str,
                 output: Path | None) -> None:
    """Run the worked examples in *.cases.csv files against the rule files beside them.

    Exit status: 0 every case passed, 1 a case failed, 2 bad usage or an unreadable case or
    rule file.
    """
    with _user_errors(ctx, EXIT_USAGE):
        run = api.run_tests(list(paths))
        text = render.test_junit(run) if output_format == "junit" else render.test_text(run, coverage)
        with _open_output(output) as out:
            out.write(text)
    ctx.exit(EXIT_FINDINGS if run.failed else EXIT_OK)


@cli.command(name="build")
@click.argument("rules", type=click.Path(path_type=Path))
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the module to this file instead of stdout.")
@click.pass_context
def build_command(ctx: click.Context, rules: Path, output: Path | None) -> None:
    """Write a Python module with the rules in RULES (a .payer file or a folder) that needs only
    the standard library: `import rules_module; rules_module.check(sessions)`.

    Exit status: 0 built, 1 a rule file has errors, 2 bad usage or unreadable file.
    """
    with _user_errors(ctx, EXIT_FINDINGS):
        text = standalone.build(api.load_policies(rules))
        with _open_output(output) as out:
            out.write(text)
    ctx.exit(EXIT_OK)


@cli.command(name="lint")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--format", "output_format", type=click.Choice(["text", "json", "sarif", "github"]), default="text",
              show_default=True, help="text for people, json for programs, sarif for code scanning, github for "
              "workflow annotations.")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
              help="A pyproject.toml with [tool.payrules.lint]; by default the nearest one above the "
              "current folder.")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False), help="Write to this file.")
@click.pass_context
def lint_command(ctx: click.Context, paths: tuple[Path, ...], output_format: str, strict: bool,
                 config_file: Path | None, output: Path | None) -> None:
    """Check the rule files in PATHS (files, or folders searched for *.payer) and report every
    problem: errors (E codes) and warnings (W codes), each with its file, line and column.

    Silence a warning on one line with a trailing `# payrules: ignore W105`.

    Exit status: 0 no errors, 1 errors (with --strict, warnings too), 2 bad usage or
    unreadable file, 3 internal error.
    """
    with _user_errors(ctx, EXIT_USAGE):
        config = lint.Config.load(config_file) if config_file else lint.Config.find(Path.cwd())
        found = list(lint.lint_paths(paths, config))
        items = [d for _, diagnostics in found for d in diagnostics]
        files = len(found)
        if output_format == "json":
            text = render.lint_json(files, items)
        elif output_format == "sarif":
            text = render.lint_sarif(files, items, __version__)
        elif output_format == "github":
            text = render.lint_github(files, items)
        else:
            text = render.lint_text(files, items)
        with _open_output(output) as out:
            out.write(text)
    failing = [d for d in items if strict or d.severity is Severity.ERROR]
    ctx.exit(EXIT_FINDINGS if failing else EXIT_OK)


@cli.command(name="fmt")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--check", "check_only", is_flag=True,
              help="Change nothing; print a diff and exit 1 if a file is not formatted.")
@click.pass_context
def fmt_command(ctx: click.Context, paths: tuple[Path, ...], check_only: bool) -> None:
    """Rewrite the rule files in PATHS in the canonical layout (files, or folders searched for
    *.payer). A file with errors is left as it is and its errors are shown.

    Exit status: 0 formatted (or already formatted), 1 with --check a file would change, or a
    file has errors, 2 bad usage or unreadable file.
    """
    changed = failed = 0
    with _user_errors(ctx, EXIT_USAGE):
        files = lint.rule_files(paths, lint.Config.find(Path.cwd()))
        for path in files:
            source = api.read_source(path)
            _, diagnostics = diagnose(source)
            errors = sorted((d for d in diagnostics if d.severity is Severity.ERROR), key=lambda d: d.sort_key)
            if errors:
                click.echo(render.diagnostics(errors), err=True, nl=False)
                failed += 1
                continue
            formatted = fmt.format_text(source.text)
            if formatted == source.text:
                continue
            changed += 1
            if check_only:
                name = printable(str(path))
                diff = difflib.unified_diff(source.text.splitlines(True), formatted.splitlines(True), name,
                                            f"{name} (formatted)")
                click.echo("".join(map(_printable_line, diff)), nl=False)
            else:
                try:
                    path.write_text(formatted, encoding="utf-8")
                except OSError as error:
                    raise InputError(f"{path}: cannot write ({error.strerror})") from None
                click.echo(printable(f"formatted {path}"), err=True)
    verb = "would be reformatted" if check_only else "reformatted"
    unchanged = len(files) - changed - failed
    counts = [f"{n} file{'s' if n != 1 else ''} {what}" for n, what in
              ((changed, verb), (unchanged, "already formatted"), (failed, "with errors left as they are")) if n]
    click.echo(", ".join(counts) or "no rule files found", err=True)
    ctx.exit(EXIT_FINDINGS if failed or (check_only and changed) else EXIT_OK)


def _printable_line(line: str) -> str:
    """A line of a diff shown safely: its content escaped, its own line ending kept."""
    content = line.rstrip("\r\n")
    return printable(content) + line[len(content):]


def _colour(stream: object) -> bool:
    return _is_tty(stream) and "NO_COLOR" not in os.environ


def main() -> None:
    """Entry point: run the CLI and turn a fault in payrules into exit status 3, not a traceback."""
    for stream in (sys.stdout, sys.stderr):
        # Output is UTF-8-safe by construction (user text is escaped); a terminal with a narrower
        # encoding still gets every character it cannot show as an escape, not a crash.
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    try:
        cli.main(prog_name="payrules", standalone_mode=True)
    except SystemExit:
        raise
    except Exception:  # noqa: BLE001 - the last line of defence
        if os.environ.get("PAYRULES_DEBUG"):
            traceback.print_exc()
        else:
            kind, value, _ = sys.exc_info()
            click.echo(f"internal error in payrules {__version__}: {kind.__name__ if kind else ''}: "
                       f"{printable(str(value))}\n"
                       "This is a bug in payrules, not in your files. Run again with PAYRULES_DEBUG=1 "
                       "for details and report it.", err=True)
        sys.exit(EXIT_INTERNAL)
