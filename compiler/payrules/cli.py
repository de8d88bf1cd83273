"""Command line → api calls → rendered output on stdout, diagnostics on stderr, and an exit code."""

from __future__ import annotations

import contextlib
import datetime
import difflib
import enum
import errno
import importlib
import io
import os
import shutil
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO, TypeVar

import attrs
import click

from payrules import __version__, api, fmt, formats, judging, lint, render, standalone, workers
from payrules.compiler import diagnose
from payrules.diagnostics import CompileError, Diagnostic, InputError, Severity
from payrules.domain import npi_is_valid
from payrules.masking import KEY_ENVIRONMENT, MaskKeyError, PatientMask, load_key
from payrules.records import Columns, ScanFirst, scan
from payrules.unread import unread_columns
from payrules.render import printable
from payrules.runner import Block, Summary, Tally
from payrules.source import Source

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
    PARQUET = "parquet"


@attrs.frozen
class Remittance:
    """What `--format 835` is told about the remittance beyond the decisions."""

    payee_npi: str | None = None
    payee_name: str | None = None
    date: datetime.date | None = None
    control_number: int = 1
    line_id: str | None = None
    """The kept id (`--keep`) that REF*6R of each SVC carries."""


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


  payrules check - --stdin-format jsonl --rules payers/ < visits.jsonl

\b
Shell completion (bash; zsh_source and fish_source for the others):
  eval "$(_PAYRULES_COMPLETE=bash_source payrules)"
"""

EDGE_COMMANDS = {
    "serve": ("payrules.serve", "serve_command"),
    "lsp": ("payrules.lsp", "lsp_command"),
    "diff": ("payrules.diff", "diff_command"),
    "explain": ("payrules.ask", "explain_command"),
}
"""Commands kept in modules of their own (`name → (module, attribute)`), imported only when
they run or are listed: `import payrules.cli` never imports a server's framework, and a
command still being built cannot break the others."""


class _Commands(click.Group):
    """The click group, with the commands of `EDGE_COMMANDS` registered lazily."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *(n for n in EDGE_COMMANDS if _edge_command(n))})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, cmd_name) or _edge_command(cmd_name)


def _edge_command(name: str) -> click.Command | None:
    """The command `name` of `EDGE_COMMANDS`, or None when its module is not there (yet)."""
    module_name, attribute = EDGE_COMMANDS.get(name, ("", ""))
    if not module_name:
        return None
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        return None
    command = getattr(module, attribute, None)
    return command if isinstance(command, click.Command) else None


@click.group(cls=_Commands, epilog=_EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="payrules")
def cli() -> None:
    """Payer rules for massage, manual therapy and chiropractic claims."""


# --- options shared by several commands -----------------------------------------------------------

F = TypeVar("F", bound=Callable[..., Any])


def _colour_option(f: F) -> F:
    return click.option("--color", "--colour", "colour", type=click.Choice(["auto", "always", "never"]),
                        default="auto", show_default=True,
                        help="Colour the text output: auto colours it on a terminal unless NO_COLOR is set to "
                        "a non-empty value.")(f)


def _talk_options(f: F) -> F:
    f = click.option("--verbose", "-v", "verbose", is_flag=True,
                     help="Say more on stderr: what was read, and how.")(f)
    return click.option("--quiet", "-q", "quiet", is_flag=True,
                        help="Print the product and the errors only: no notes or progress bar on stderr, and no "
                        "summary line from lint or fmt.")(f)


def _exit_zero_option(f: F) -> F:
    return click.option("--exit-zero", "exit_zero", is_flag=True,
                        help="Exit 0 even when there are findings (bad usage still exits 2).")(f)


def _colour(choice: str, stream: object) -> bool:
    """Whether to colour text written to `stream`. `NO_COLOR` counts only when set to a
    non-empty value (https://no-color.org); `always` and `never` win over it."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    return _is_tty(stream) and not os.environ.get("NO_COLOR")


def _talk(ctx: click.Context, quiet: bool, verbose: bool) -> None:
    if quiet and verbose:
        raise click.UsageError("--quiet and --verbose ask for opposite things; give one of them", ctx)


def _say(text: str) -> None:
    click.echo(printable(text), err=True)


STDIN = "-"
"""Where a file name goes, `-` is stdin (or stdout for `--output`), as in ruff, black and OPA."""

STDIN_NAME = api.STDIN_NAME

STDIN_FORMATS = ("csv", "json", "jsonl", "x12", "parquet")


@cli.command()
@click.argument("sessions", nargs=-1, required=True, type=click.Path(path_type=Path, allow_dash=True))
@click.option("--rules", "rules", type=click.Path(path_type=Path),
              help="A .payer rule file, or a folder searched for them; by default `rules` of [tool.payrules] "
              "in the nearest pyproject.toml.")
@click.option("--format", "output_format", type=click.Choice([f.value for f in OutputFormat]),
              help="How to write the decisions: text for people (the default); json, jsonl or csv for programs; "
              "parquet for a Parquet file (needs --output FILE and payrules[parquet]); 835 for an X12 835 "
              "remittance advice, what each payer would send back (the lines not judged and the summary go to "
              "stderr).")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
              help="Write the decisions to this file instead of stdout (`-` is stdout).")
@click.option("--stdin-format", "stdin_format", type=click.Choice(STDIN_FORMATS),
              help="The format of the sessions read from `-` (stdin); by default recognised from their start.")
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
@click.option("--accumulators", "accumulators", multiple=True, type=click.Path(path_type=Path, dir_okay=False),
              help="What the payer has already counted of each limit over a period (CSV, JSON or JSONL: "
              "patient, payer, rule name, through date, visits, units or amount used), counted by the limit "
              "it names on top of --history (repeatable).")
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
@click.option("--keep", "keep", multiple=True, metavar="NAME",
              help="Carry this input column (CSV or Parquet header, or JSON key of a session or of a line) "
              "unchanged to every output, to join the decisions back to your own records (repeatable; "
              "for 837P input: claim_id, line_number or line_control); by default `keep` of [tool.payrules].")
@click.option("--835-line-id", "line_id", metavar="NAME",
              help="With --format 835: the kept column (see --keep; added to it if missing) that each "
              "service's REF*6R, the line item control number, carries.")
@click.option("--statistics", "statistics", is_flag=True,
              help="Also count the lines by payer and status, and the reasons by CARC and by rule, on stderr.")
@_talk_options
@_exit_zero_option
@_colour_option
@click.pass_context
def check(ctx: click.Context, sessions: tuple[Path, ...], rules: Path | None, output_format: str | None,
          output: Path | None, stdin_format: str | None, columns_file: Path | None, payer_map_file: Path | None,
          history: tuple[Path, ...], accumulators: tuple[Path, ...], mask_ids: bool, mask_key_file: Path | None,
          payee_npi: str | None, payee_name: str | None, remit_date: datetime.date | None,
          control_number: int | None, keep: tuple[str, ...], line_id: str | None, statistics: bool,
          quiet: bool, verbose: bool, exit_zero: bool, colour: str) -> None:
    """Judge the service lines in SESSIONS against payer rules.

    \b
    SESSIONS are files of service lines, in any of these formats (`-` reads stdin):
      CSV (.csv), JSON (.json) or JSONL (.jsonl) session files;
      Parquet files (.parquet, .parq, .pq): needs payrules[parquet];
      X12 837P claim files (.837, .x12, .edi, or any file whose content
        starts with ISA): each SV1 is a line to judge; needs payrules[x12].

    The decisions are written as text, JSON, JSONL, CSV, Parquet, or an X12 835 remittance
    advice (--format 835).

    --rules, --format, --columns, --payer-map and --keep default to `rules`, `format`, `columns`,
    `payer_map` and `keep` of [tool.payrules] in the nearest pyproject.toml (paths relative to it).

    Input grouped by patient (all rows of a patient together) is judged one patient at a time,
    without holding the whole input in memory; other input is read whole first. A large
    grouped CSV file is judged in parts, one worker process per CPU, with the same output.

    Exit status: 0 every line paid in full (or --exit-zero), 1 some line denied, reduced or
    not judged, 2 bad usage or unreadable input (including rule files with errors).
    """
    _talk(ctx, quiet, verbose)
    with _user_errors(ctx, EXIT_USAGE):
        defaults = lint.CheckDefaults.find(Path.cwd())
        rules = rules or defaults.rules
        if rules is None:
            raise click.UsageError("Missing option '--rules' (or `rules` in [tool.payrules] of pyproject.toml).",
                                   ctx)
        chosen = _output_format(output_format or defaults.format or OutputFormat.TEXT.value, defaults)
        columns_file = columns_file or defaults.columns
        payer_map_file = payer_map_file or defaults.payer_map
        keep = keep or defaults.keep
        keep = _with_line_id(keep, line_id)
        Columns().with_keep(keep)  # a kept name that is a session field: refused before anything is read
    remittance = _remittance(ctx, chosen, payee_npi, payee_name, remit_date, control_number, line_id)
    mask = _patient_mask(ctx, mask_ids, mask_key_file)
    to_stdout = output is None or str(output) == STDIN
    if chosen is OutputFormat.PARQUET:
        _parquet_ready(ctx, output)
    with _user_errors(ctx, EXIT_USAGE), _stdin_sessions(ctx, sessions, stdin_format) as paths:
        columns = Columns.load(columns_file, keep) if columns_file else None
        if payer_map_file is not None:
            columns = (columns or Columns()).with_payers(formats.load_payer_map(payer_map_file))
        if keep:
            columns = (columns or Columns()).with_keep(keep)
        # In one process, into a file, the input is read once: not scanned first, but judged as
        # grouped by patient into FILE.partial, which is moved into place when complete, and
        # scanned and judged again only if it turns out not to be grouped.
        once = (not to_stdout and output is not None and not verbose and not statistics
                and chosen in (OutputFormat.TEXT, OutputFormat.JSON, OutputFormat.JSONL, OutputFormat.CSV)
                and workers.reads_once(paths) and (quiet or not _is_tty(sys.stderr)) and _replaceable(output))
        run = api.start_check(paths, rules, columns, list(history), list(accumulators), scan_sessions=not once)
        for warning in run.accumulators.warnings if run.accumulators is not None else ():
            click.echo(f"warning: {printable(warning)}", err=True)
        for warning in unread_columns(paths, run.columns):
            click.echo(printable(warning), err=True)
        if once:
            assert output is not None
            with judging.fewer_collections():
                written = _write_once(run, chosen, output, mask)
            if written is not None:
                ctx.exit(EXIT_OK if exit_zero or written.paid == written.lines_read else EXIT_FINDINGS)
            run = attrs.evolve(run, scan=scan(paths, run.columns))
        counted = api.Statistics() if statistics else None
        # Text, JSON, JSONL and CSV output can be merged back from buckets judged apart (workers).
        bucketed = (workers.bucketable(run) and counted is None
                    and chosen in (OutputFormat.TEXT, OutputFormat.JSON, OutputFormat.JSONL, OutputFormat.CSV))
        how = "judging it in buckets by patient" if bucketed else f"reading all {run.scan.lines} lines into memory"
        if verbose:
            _tell_run(run, rules, bucketed)
        if not run.scan.grouped and run.scan.lines >= LARGE_INPUT_LINES and not quiet:
            patient = run.scan.patient or ""
            click.echo(printable(
                f"note: the sessions are not grouped by patient (patient `{mask(patient) if mask else patient}` "
                f"appears again at {run.scan.regrouped_at}); {how}. "
                "Sort the rows by patient to judge them one patient at a time."), err=True)
        if counted is not None:
            # Counting sees every block, so the lines are judged in this process (same output).
            run = attrs.evolve(run, scan=attrs.evolve(run.scan, parts=()))
        with judging.fewer_collections():
            if chosen is OutputFormat.PARQUET:
                assert output is not None
                tally = _write_parquet(run, output, mask, counted, progress=not quiet)
            else:
                with render.open_output(None if to_stdout else output) as out:
                    tally = _write(run, chosen, out, colour=to_stdout and _colour(colour, sys.stdout), mask=mask,
                                   remittance=remittance, counted=counted, progress=not quiet)
        if counted is not None:
            click.echo(counted.text(), err=True, nl=False)
        if verbose and not to_stdout:
            _say(f"wrote {tally.lines_read} line{'s' if tally.lines_read != 1 else ''} to {output}")
    ctx.exit(EXIT_OK if exit_zero or tally.paid == tally.lines_read else EXIT_FINDINGS)


def _output_format(value: str, defaults: lint.CheckDefaults) -> OutputFormat:
    try:
        return OutputFormat(value)
    except ValueError:
        choices = ", ".join(f.value for f in OutputFormat)
        raise InputError(f"{defaults.path}: [tool.payrules] format `{value}` is not one of {choices}") from None


def _parquet_ready(ctx: click.Context, output: Path | None) -> None:
    """`--format parquet` writes a binary file: it needs `--output FILE` and pyarrow, both
    checked before anything is read or any file is created."""
    if output is None or str(output) == STDIN:
        raise click.UsageError("--format parquet writes a binary file: give --output FILE, such as "
                               "-o decisions.parquet", ctx)
    from payrules.formats import parquet  # only for this format

    try:
        parquet.output_schema()
    except InputError as error:
        click.echo(f"error: {printable(str(error))}", err=True)
        ctx.exit(EXIT_USAGE)


def _write_parquet(run: api.CheckRun, output: Path, mask: render.Mask | None, counted: api.Statistics | None,
                   progress: bool) -> Tally:
    """Write the Parquet file beside its place as FILE.partial and move it into place when it
    is complete, so that a failed run never leaves a truncated file under the name asked for."""
    from payrules.formats.parquet import ParquetWriter  # only for this format

    partial = output.with_name(output.name + ".partial")
    try:
        sink = open(partial, "wb")
    except OSError as error:
        raise InputError(f"{output}: cannot write ({error.strerror})") from None
    with _moved_into_place(partial, output), sink:
        return _drive(run, ParquetWriter(sink, mask=mask, keep=_kept_names(run)), counted, progress)


@contextlib.contextmanager
def _moved_into_place(partial: Path, output: Path) -> Iterator[None]:
    """Move the file `partial` to `output` when the block completes, and remove it when the
    block fails (the error goes on)."""
    try:
        yield
        os.replace(partial, output)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise


def _replaceable(output: Path) -> bool:
    """Whether `output` may be written beside its place and moved there: a regular file, or
    nothing yet (not a device such as /dev/null, a pipe or a symbolic link)."""
    try:
        return not output.is_symlink() and (output.is_file() or not output.exists())
    except OSError:
        return False


def _write_once(run: api.CheckRun, chosen: OutputFormat, output: Path, mask: render.Mask | None) -> Tally | None:
    """Judge a run that was not scanned (see `api.start_check`) into FILE.partial and move it into
    place when complete, so that a failed run never leaves a truncated file under the name asked
    for. None, and no file, when the input turns out not to be grouped by patient or the file
    beside the output cannot be made: it is then judged the usual way."""
    partial = output.with_name(output.name + ".partial")
    try:
        sink = open(partial, "w", encoding="utf-8", newline="")
    except OSError:
        return None
    try:
        with _moved_into_place(partial, output), sink:
            return _write(run, chosen, sink, colour=False, mask=mask, progress=False)
    except ScanFirst:
        return None


@contextlib.contextmanager
def _stdin_sessions(ctx: click.Context, sessions: tuple[Path, ...], stdin_format: str | None) -> Iterator[list[Path]]:
    """The session paths, with `-` standing for stdin copied to a temporary file (the input is
    read twice: once to scan it, once to judge it). Outputs and messages name it `<stdin>`."""
    if sessions.count(Path(STDIN)) > 1:
        raise click.UsageError("`-` (stdin) can be given once", ctx)
    if Path(STDIN) not in sessions:
        if stdin_format is not None:
            raise click.UsageError("--stdin-format applies to sessions read from `-` (stdin) only", ctx)
        yield list(sessions)
        return
    with tempfile.TemporaryDirectory(prefix="payrules-stdin-") as folder:
        raw = Path(folder) / "stdin"
        with open(raw, "wb") as copy:
            shutil.copyfileobj(sys.stdin.buffer, copy)
        with open(raw, "rb") as stream:
            head = stream.read(formats.SNIFF_BYTES)
        kind = stdin_format or api.sniff_stdin(head, raw)
        suffix = {"x12": ".837"}.get(kind, f".{kind}")
        spooled = raw.rename(raw.with_name(f"stdin{suffix}"))
        yield [api.StdinPath(spooled) if path == Path(STDIN) else path for path in sessions]


def _tell_run(run: api.CheckRun, rules: Path, bucketed: bool) -> None:
    """What `--verbose` says before judging: the rules loaded and how the input is read."""
    policies = [p for found in run.policies.values() for p in found]
    _say(f"rules: {len(policies)} rule file{'s' if len(policies) != 1 else ''} under {rules}")
    for policy in sorted(policies, key=lambda p: (p.payer_id.casefold(), p.effective_from or "")):
        dates = f"{policy.effective_from or 'any date'} to {policy.effective_to or 'any date'}"
        _say(f"  {policy.payer_id}: {policy.source} ({dates})")
    how = ("grouped by patient: judged one patient at a time" if run.scan.grouped else
           f"not grouped by patient (from {run.scan.regrouped_at}): "
           + ("cut into buckets by patient" if bucketed else "read whole"))
    workers_used = workers.worker_count(run)
    parallel = f", in {workers_used} worker processes" if workers_used > 1 else ""
    _say(f"sessions: {run.scan.lines} line{'s' if run.scan.lines != 1 else ''} in "
         f"{', '.join(str(p) for p in run.sessions)}; {how}{parallel}")


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


def _with_line_id(keep: tuple[str, ...], line_id: str | None) -> tuple[str, ...]:
    """The names `--keep` asks for, with `--835-line-id`'s added when it is not among them."""
    if line_id is None:
        return keep
    from payrules.fields import field_name

    return keep if field_name(line_id) in map(field_name, keep) else (*keep, line_id)


def _remittance(ctx: click.Context, output_format: OutputFormat, payee_npi: str | None, payee_name: str | None,
                remit_date: datetime.date | None, control_number: int | None,
                line_id: str | None = None) -> Remittance | None:
    """The 835 options, or None when the format is not 835; given with another format, they
    are a usage error rather than silently ignored."""
    given = {"--payee-npi": payee_npi, "--payee-name": payee_name, "--835-date": remit_date,
             "--interchange-control-number": control_number, "--835-line-id": line_id}
    if output_format is not OutputFormat.X835:
        named = [name for name, value in given.items() if value is not None]
        if named:
            raise click.UsageError(f"{', '.join(named)} {'apply' if len(named) > 1 else 'applies'} to --format "
                                   f"835 only; add --format 835 or leave {'them' if len(named) > 1 else 'it'} out",
                                   ctx)
        return None
    from payrules.fields import field_name

    return Remittance(payee_npi, payee_name, remit_date, control_number or 1,
                      field_name(line_id) if line_id is not None else None)


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
           mask: render.Mask | None = None, remittance: Remittance | None = None,
           counted: api.Statistics | None = None, progress: bool = True) -> Tally:
    writer: render.Writer
    keep = _kept_names(run)
    if output_format is OutputFormat.X835:
        from payrules.formats.x835 import X835Writer  # only for this format

        given = remittance or Remittance()
        writer = X835Writer(out, mask=mask, errors=sys.stderr, payee_npi=given.payee_npi,
                            payee_name=given.payee_name, date=given.date, control_number=given.control_number,
                            keep=keep, line_id=given.line_id)
    elif output_format is OutputFormat.JSON:
        writer = render.JsonWriter(out, mask=mask, keep=keep)
    elif output_format is OutputFormat.JSONL:
        writer = render.JsonlWriter(out, mask=mask, keep=keep)
    elif output_format is OutputFormat.CSV:
        writer = render.CsvWriter(out, mask=mask, keep=keep)
    else:
        writer = render.TextWriter(out, colour, mask=mask, keep=keep)
    return _drive(run, writer, counted, progress)


def _kept_names(run: api.CheckRun) -> tuple[str, ...]:
    return run.columns.keep if run.columns is not None else ()


def _drive(run: api.CheckRun, writer: render.Writer, counted: api.Statistics | None, progress: bool) -> Tally:
    """Judge `run` into `writer` and close it; a progress bar on a terminal for large input."""
    tally = Tally()
    if counted is not None:
        writer = _Counting(writer, counted)
    show_progress = progress and _is_tty(sys.stderr) and run.scan.lines >= LARGE_INPUT_LINES
    with click.progressbar(length=run.scan.lines, label="Judging", file=sys.stderr if show_progress else _Null(),
                           show_pos=True) as bar:
        for done in workers.write(run, writer, tally):
            bar.update(done)
    writer.close(tally.summary())
    return tally


class _Counting(render.Writer):
    """A writer that counts each block for `--statistics` before the real writer writes it."""

    def __init__(self, inner: render.Writer, counted: api.Statistics) -> None:
        super().__init__(inner.out, continued=inner.continued)
        self.inner = inner
        self.counted = counted

    def block(self, block: Block) -> None:
        self.counted.add(block)  # before masking: statistics show no patient ids
        self.inner.block(block)

    def _write_block(self, block: Block) -> None:
        raise AssertionError("block() hands blocks to the inner writer")

    def close(self, summary: Summary) -> None:
        self.inner.close(summary)

    def continuation(self, out: TextIO) -> render.Writer:
        raise AssertionError("--statistics judges in one process")


@contextlib.contextmanager
def _user_errors(ctx: click.Context, compile_exit: int) -> Iterator[None]:
    """Print a rule file's diagnostics or an input error on stderr and exit; no traceback."""
    try:
        yield
    except CompileError as error:
        click.echo(render.diagnostics(error.diagnostics), err=True, nl=False)
        ctx.exit(compile_exit)
    except InputError as error:
        # An error that lists several problems (an accumulators file) prints one line for each.
        for part in getattr(error, "lines", None) or [str(error)]:
            click.echo(f"error: {printable(part)}", err=True)
        ctx.exit(EXIT_USAGE)


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
        with render.open_output(output) as out:
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
        with render.open_output(output) as out:
            out.write(text)
    ctx.exit(EXIT_OK)


@cli.command(name="lint")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, allow_dash=True))
@click.option("--format", "output_format", type=click.Choice(["text", "json", "sarif", "github"]), default="text",
              show_default=True, help="text for people, json for programs, sarif for code scanning, github for "
              "workflow annotations.")
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
              help="A pyproject.toml with [tool.payrules.lint]; by default the nearest one above the "
              "current folder.")
@click.option("--output", "-o", type=click.Path(path_type=Path, dir_okay=False, allow_dash=True),
              help="Write to this file (`-` is stdout).")
@_talk_options
@_exit_zero_option
@_colour_option
@click.pass_context
def lint_command(ctx: click.Context, paths: tuple[Path, ...], output_format: str, strict: bool,
                 config_file: Path | None, output: Path | None, quiet: bool, verbose: bool, exit_zero: bool,
                 colour: str) -> None:
    """Check the rule files in PATHS (files, or folders searched for *.payer; `-` reads one rule
    file from stdin) and report every problem: errors (E codes) and warnings (W codes), each with
    its file, line and column. It runs every check that `check` and `build` run, including those
    across files (E107, two rule files of one payer whose dates overlap).

    Silence a warning on one line with a trailing `# payrules: ignore W105`.

    Exit status: 0 no errors (or --exit-zero), 1 errors (with --strict, warnings too), 2 bad
    usage or unreadable file, 3 internal error.
    """
    _talk(ctx, quiet, verbose)
    with _user_errors(ctx, EXIT_USAGE):
        config = lint.Config.load(config_file) if config_file else lint.Config.find(Path.cwd())
        if verbose:
            _say(f"configuration: {config.path or 'none (no pyproject.toml with [tool.payrules.lint])'}")
        if _dash(ctx, paths):
            source = Source(STDIN_NAME, _read_stdin_text())
            found = [(Path(STDIN_NAME), lint.lint_source(source, config))]
        else:
            found = list(lint.lint_paths(paths, config))
        if verbose:
            for path, diagnostics in found:
                _say(f"checked {path}: {len(diagnostics) or 'no'} finding{'s' if len(diagnostics) != 1 else ''}")
        items = [d for _, diagnostics in found for d in diagnostics]
        files = len(found)
        if output_format == "json":
            text = render.lint_json(files, items)
        elif output_format == "sarif":
            text = render.lint_sarif(files, items, __version__)
        elif output_format == "github":
            text = render.lint_github(files, items)
        else:
            to_stdout = output is None or str(output) == STDIN
            text = _lint_text(files, items, colour=to_stdout and _colour(colour, sys.stdout), quiet=quiet)
        with render.open_output(None if output is None or str(output) == STDIN else output) as out:
            out.write(text)
    failing = [d for d in items if strict or d.severity is Severity.ERROR]
    ctx.exit(EXIT_FINDINGS if failing and not exit_zero else EXIT_OK)


_SEVERITY_COLOUR = {Severity.ERROR: "red", Severity.WARNING: "yellow"}


def _lint_text(files: int, items: list[Diagnostic], colour: bool, quiet: bool) -> str:
    """`render.lint_text`, with colour on a terminal: the code and the carets in the colour of
    the severity, the location and `help:` dimmed or highlighted as ruff does. `quiet` leaves the
    summary line out. Without colour and quiet, the text is `render.lint_text`'s, byte for byte."""
    if not colour and not quiet:
        return render.lint_text(files, items)
    blocks = [render.diagnostic(d) for d in items]
    if colour:
        blocks = [_coloured(text, d.severity) for text, d in zip(blocks, items)]
    body = "".join(block + "\n\n" for block in blocks)
    if quiet:
        return body
    summary = render.lint_summary(files, items)
    failing = any(d.severity is Severity.ERROR for d in items)
    return body + (click.style(summary.rstrip("\n"), fg="red" if failing else "yellow" if items else "green",
                               bold=True) + "\n")


def _coloured(text: str, severity: Severity) -> str:
    """One diagnostic of `render.diagnostic`, coloured line by line (its layout is fixed:
    `CODE message`, ` --> file:line:col`, gutter lines, the source line, the carets, help)."""
    colour = _SEVERITY_COLOUR.get(severity)
    lines = text.split("\n")
    code, _, message = lines[0].partition(" ")
    lines[0] = f"{click.style(code, fg=colour, bold=True)} {click.style(message, bold=True)}"
    for n, line in enumerate(lines[1:], start=1):
        gutter, bar, rest = line.partition(" | ")
        if "-->" in line and n == 1:
            arrow, _, where = line.partition("--> ")
            lines[n] = f"{arrow}{click.style('-->', fg='blue', bold=True)} {click.style(where, fg='cyan')}"
        elif bar and rest.strip() and set(rest.strip()) == {"^"}:
            lines[n] = f"{gutter}{click.style(' | ', fg='blue', bold=True)}{click.style(rest, fg=colour, bold=True)}"
        elif bar:
            lines[n] = f"{gutter}{click.style(' | ', fg='blue', bold=True)}{rest}"
        elif line.strip() == "|":
            lines[n] = click.style(line, fg="blue", bold=True)
        elif line.lstrip().startswith("= help:"):
            indent, _, help_text = line.partition("= help:")
            lines[n] = f"{indent}{click.style('= help:', fg='cyan', bold=True)}{help_text}"
    return "\n".join(lines)


def _dash(ctx: click.Context, paths: tuple[Path, ...]) -> bool:
    """Whether PATHS is `-` (stdin); `-` cannot be mixed with files."""
    if Path(STDIN) not in paths:
        return False
    if len(paths) > 1:
        raise click.UsageError("`-` (a rule file on stdin) cannot be combined with other paths", ctx)
    return True


def _read_stdin_text() -> str:
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8-sig").replace("\r\n", "\n")
    except UnicodeDecodeError as error:
        raise InputError(f"{STDIN_NAME}: not UTF-8 text (byte {error.start + 1})") from None


@cli.command(name="fmt")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path, allow_dash=True))
@click.option("--check", "check_only", is_flag=True,
              help="Change nothing; print a diff and exit 1 if a file is not formatted.")
@_talk_options
@click.pass_context
def fmt_command(ctx: click.Context, paths: tuple[Path, ...], check_only: bool, quiet: bool, verbose: bool) -> None:
    """Rewrite the rule files in PATHS in the canonical layout (files, or folders searched for
    *.payer). A file with errors is left as it is and its errors are shown. `-` reads a rule
    file from stdin and prints it formatted on stdout (with --check, the diff).

    Exit status: 0 formatted (or already formatted), 1 with --check a file would change, or a
    file has errors, 2 bad usage or unreadable file.
    """
    _talk(ctx, quiet, verbose)
    changed = failed = 0
    with _user_errors(ctx, EXIT_USAGE):
        if _dash(ctx, paths):
            ctx.exit(_fmt_stdin(check_only))
        files = lint.rule_files(paths, lint.Config.find(Path.cwd()))
        for path in files:
            source = api.read_source(path)
            if not _fmt_errors(source):
                failed += 1
                continue
            formatted = fmt.format_text(source.text)
            if formatted == source.text:
                if verbose:
                    _say(f"{path} already formatted")
                continue
            changed += 1
            if check_only:
                click.echo(_diff(str(path), source.text, formatted), nl=False)
            else:
                try:
                    path.write_text(formatted, encoding="utf-8")
                except OSError as error:
                    raise InputError(f"{path}: cannot write ({error.strerror})") from None
                if not quiet:
                    _say(f"formatted {path}")
    verb = "would be reformatted" if check_only else "reformatted"
    unchanged = len(files) - changed - failed
    counts = [f"{n} file{'s' if n != 1 else ''} {what}" for n, what in
              ((changed, verb), (unchanged, "already formatted"), (failed, "with errors left as they are")) if n]
    if not quiet:
        click.echo(", ".join(counts) or "no rule files found", err=True)
    ctx.exit(EXIT_FINDINGS if failed or (check_only and changed) else EXIT_OK)


def _fmt_errors(source: Source) -> bool:
    """True when `source` has no errors; else its errors go to stderr (never silenced by --quiet)."""
    _, diagnostics = diagnose(source)
    errors = sorted((d for d in diagnostics if d.severity is Severity.ERROR), key=lambda d: d.sort_key)
    if errors:
        click.echo(render.diagnostics(errors), err=True, nl=False)
    return not errors


def _fmt_stdin(check_only: bool) -> int:
    """`payrules fmt -`: the formatted text on stdout, as black and ruff do; with --check, the
    diff. A rule file with errors prints them on stderr, nothing on stdout, and exits 1."""
    source = Source(STDIN_NAME, _read_stdin_text())
    if not _fmt_errors(source):
        return EXIT_FINDINGS
    formatted = fmt.format_text(source.text)
    if not check_only:
        click.echo(formatted, nl=False)
        return EXIT_OK
    if formatted == source.text:
        return EXIT_OK
    click.echo(_diff(STDIN_NAME, source.text, formatted), nl=False)
    return EXIT_FINDINGS


def _diff(name: str, before: str, after: str) -> str:
    shown = printable(name)
    diff = difflib.unified_diff(before.splitlines(True), after.splitlines(True), shown, f"{shown} (formatted)")
    return "".join(map(_printable_line, diff))


def _printable_line(line: str) -> str:
    """A line of a diff shown safely: its content escaped, its own line ending kept."""
    content = line.rstrip("\r\n")
    return printable(content) + line[len(content):]


_SYSTEM_REFUSALS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO, errno.EROFS})
"""Errors of the system that no fault of payrules or of its input causes (a full disk, a disk
that fails): exit status 2 with what the system said, not an internal error."""


def main() -> None:
    """Entry point: run the CLI and turn a fault in payrules into exit status 3, not a traceback
    (a full or failing disk into exit status 2)."""
    for stream in (sys.stdout, sys.stderr):
        # Output is UTF-8-safe by construction (user text is escaped); a terminal with a narrower
        # encoding still gets every character it cannot show as an escape, not a crash.
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    try:
        cli.main(prog_name="payrules", standalone_mode=True)
    except SystemExit:
        raise
    except Exception as error:  # noqa: BLE001 - the last line of defence
        if isinstance(error, OSError) and error.errno in _SYSTEM_REFUSALS and not os.environ.get("PAYRULES_DEBUG"):
            where = f" ({printable(os.fsdecode(error.filename))})" if error.filename else ""
            click.echo(f"error: the system refused to read or write a file: {error.strerror}{where}. "
                       "Free some space (or fix the disk) and run again: any output written so far may be "
                       "incomplete.", err=True)
            sys.exit(EXIT_USAGE)
        if os.environ.get("PAYRULES_DEBUG"):
            traceback.print_exc()
        else:
            kind, value, _ = sys.exc_info()
            click.echo(f"internal error in payrules {__version__}: {kind.__name__ if kind else ''}: "
                       f"{printable(str(value))}\n"
                       "This is a bug in payrules, not in your files. Run again with PAYRULES_DEBUG=1 "
                       "for details and report it.", err=True)
        sys.exit(EXIT_INTERNAL)
