"""Claim file formats → which reader turns a file into flat records, by extension or by its first bytes.

A format module turns bytes into the flat records of `payrules.fields` (strings in `ALL_FIELDS`
order, an `Origin` and a structural `Problem`), so validation, grouping and judging apply to
every format unchanged. Formats never import the parser, the checker or the code generator.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs

from payrules.diagnostics import InputError
from payrules.fields import Record

if TYPE_CHECKING:  # records imports this registry; the reverse import exists for types only
    from payrules.records import Columns

SNIFF_BYTES = 512
"""How much of a file's start is read to recognise its format by content."""


@attrs.frozen
class ReadOptions:
    """What a claim format needs besides the file itself."""

    payers: Mapping[str, str] = attrs.field(factory=dict)
    """Payer id as the file spells it → payer id of the rule files."""
    columns: Columns | None = None
    """Which column feeds each field, for formats with named columns (Parquet); None reads
    columns named as the fields are, as a CSV header is read without `--columns`."""


Reader = Callable[[Path, ReadOptions], Iterator[Record]]


@attrs.frozen
class Format:
    """One input format: its name, its file extensions, how to recognise its content, its reader."""

    name: str
    extensions: tuple[str, ...]
    sniff: Callable[[bytes], bool]
    """Whether the first bytes of a file (at most `SNIFF_BYTES`) are in this format."""
    read: Reader


def _x12_sniff(head: bytes) -> bool:
    from payrules.formats import x12

    return x12.sniff(head)


def _x12_read(path: Path, options: ReadOptions) -> Iterator[Record]:
    from payrules.formats import x12

    # The line ids are read only when the caller keeps some (`--keep claim_id`...).
    return x12.records(path, options.payers, ids=bool(options.columns is not None and options.columns.keep))


def _parquet_sniff(head: bytes) -> bool:
    # The magic number, without importing the module (and so pyarrow) for every file sniffed.
    return head.startswith(b"PAR1")


def _parquet_read(path: Path, options: ReadOptions) -> Iterator[Record]:
    from payrules.formats import parquet

    return parquet.records(path, options.columns)


FORMATS: tuple[Format, ...] = (
    Format("X12 837P", (".837", ".x12", ".edi"), _x12_sniff, _x12_read),
    Format("Parquet", (".parquet", ".parq", ".pq"), _parquet_sniff, _parquet_read),
)
"""Claim formats beyond CSV, JSON and JSONL; a new format is one module and one line here."""


def format_for(path: Path) -> Format | None:
    """The format of `path` by its extension, else by its first bytes; None when no format here
    claims it (the caller then reads it as CSV or JSON, or says the format is unknown)."""
    suffix = path.suffix.lower()
    for found in FORMATS:
        if suffix in found.extensions:
            return found
    try:
        with open(path, "rb") as stream:
            head = stream.read(SNIFF_BYTES)
    except OSError:
        return None  # the caller's own open reports a missing or unreadable file in its words
    for found in FORMATS:
        if found.sniff(head):
            return found
    return None


def extensions() -> tuple[str, ...]:
    """Every extension a format here reads, for help texts and error messages."""
    return tuple(ext for found in FORMATS for ext in found.extensions)


def load_payer_map(path: Path) -> dict[str, str]:
    """A TOML file's `[payers]` table: payer id in the claim file → payer id of the rule files.

    The same table may sit in the column-mapping file given to `--columns`."""
    return payer_table(read_toml(path, "payer map"), path)


def read_toml(path: Path, what: str) -> dict[str, Any]:
    """A TOML file given on the command line (`what`: "payer map", "column mapping"), or a
    worded `InputError` when it is missing, unreadable or not TOML."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except FileNotFoundError:
        raise InputError(f"{path}: no such {what} file") from None
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"{path}: cannot read ({error})") from None
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{path}: not valid TOML ({error})") from None


def payer_table(data: Mapping[str, object], path: Path, required: bool = True) -> dict[str, str]:
    """The `[payers]` table of parsed TOML, checked; {} when absent and not `required`."""
    table = data.get("payers")
    if table is None and not required:
        return {}
    if not isinstance(table, dict):
        raise InputError(f'{path}: expected a [payers] table, such as [payers] 87726 = "UHC"')
    payers: dict[str, str] = {}
    for key, value in table.items():
        if not isinstance(value, str) or not value.strip():
            raise InputError(f"{path}: payer `{key}` must map to a payer id of the rule files, "
                             f'such as {key} = "ACME"')
        payers[str(key).strip()] = value.strip()
    return payers
