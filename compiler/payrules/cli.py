"""Command line → api calls → rendered output on stdout, diagnostics on stderr, and an exit code."""

from __future__ import annotations

import enum
import os
import sys
import traceback
from pathlib import Path

import click

from payrules import __version__, api, render
from payrules.diagnostics import CompileError, InputError

EXIT_OK = 0
EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_INTERNAL = 3


class OutputFormat(enum.Enum):
    TEXT = "text"
    JSON = "json"


_EPILOG = """\b
Examples:
  payrules check visits.csv --rules payers/
  payrules check visits.jsonl --rules payers/ash.payer --format json
  payrules compile payers/ash.payer
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
              default=OutputFormat.TEXT.value, show_default=True, help="How to print the decisions.")
@click.pass_context
def check(ctx: click.Context, sessions: tuple[Path, ...], rules: Path, output_format: str) -> None:
    """Judge the service lines in SESSIONS (.csv, .json, .jsonl) against payer rules.

    Exit status: 0 every line paid in full, 1 some line denied, reduced or not judged,
    2 bad usage or unreadable input (including rule files with errors).
    """
    try:
        report = api.check_files(list(sessions), rules)
    except CompileError as error:
        click.echo(render.diagnostics(error.diagnostics), err=True, nl=False)
        ctx.exit(EXIT_USAGE)
    except InputError as error:
        click.echo(f"error: {error}", err=True)
        ctx.exit(EXIT_USAGE)
    if OutputFormat(output_format) is OutputFormat.JSON:
        click.echo(render.report_json(report), nl=False)
    else:
        click.echo(render.report_text(report, colour=_colour(sys.stdout)), nl=False, color=_colour(sys.stdout))
    ctx.exit(EXIT_OK if report.all_paid else EXIT_FINDINGS)


@cli.command(name="compile")
@click.argument("rule_file", type=click.Path(path_type=Path))
@click.pass_context
def compile_command(ctx: click.Context, rule_file: Path) -> None:
    """Print the Python that payrules generates for RULE_FILE.

    Exit status: 0 compiled, 1 the rule file has errors, 2 bad usage or unreadable file.
    """
    try:
        source = api.read_source(rule_file)
        python = api.emit_python(source)
    except CompileError as error:
        click.echo(render.diagnostics(error.diagnostics), err=True, nl=False)
        ctx.exit(EXIT_FINDINGS)
    except InputError as error:
        click.echo(f"error: {error}", err=True)
        ctx.exit(EXIT_USAGE)
    click.echo(python, nl=False)
    ctx.exit(EXIT_OK)


def _colour(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and "NO_COLOR" not in os.environ


def main() -> None:
    """Entry point: run the CLI and turn a fault in payrules into exit status 3, not a traceback."""
    try:
        cli.main(prog_name="payrules", standalone_mode=True)
    except SystemExit:
        raise
    except Exception:  # noqa: BLE001 - the last line of defence
        if os.environ.get("PAYRULES_DEBUG"):
            traceback.print_exc()
        else:
            kind, value, _ = sys.exc_info()
            click.echo(f"internal error in payrules {__version__}: {kind.__name__ if kind else ''}: {value}\n"
                       "This is a bug in payrules, not in your files. Run again with PAYRULES_DEBUG=1 "
                       "for details and report it.", err=True)
        sys.exit(EXIT_INTERNAL)
