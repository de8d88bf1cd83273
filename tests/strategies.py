"""Hypothesis strategies → hostile rule files and session records (huge numbers, odd text, deep nesting)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from pathlib import Path

from hypothesis import strategies as st

# --- rule-file token soup (used by the parser/lint/fmt properties) --------------------------------

WORDS = ["payer", "set", "include", "drop", "override", "only", "not", "covered", "no", "same", "day", "session",
         "as", "unless", "modifier", "max", "per", "units", "unit", "visits", "minutes", "of", "for", "with",
         "requires", "NPI", "DC", "LMT", "prescription", "diagnosis", "from", "bundled", "into", "one", "duplicate",
         "by", "cms", "ama", "rule", "calendar", "year", "plan", "July", "lifetime", "days", "charge", "carc", "rarc",
         "warn", "source", "effective", "to", "97140", "97124", "98940-98943", "9714", "S8990", "$45", "$45.005",
         "$-1", "75%", "0", "12", "M54.5*", "724.2", "2024-01-01", "2024-02-30", '"quoted"', '"open', ",", ":",
         "=", "-", "#", "*", "\t", "\\", "é", "\u200b", "\r"]

# --- hostile pieces ---------------------------------------------------------------------------------

MARKER = "FORGED"
"""Every line-breaking piece is followed by this word: if a value could start a line of the text
report, a line would start with it."""

HUGE_DIGITS = ["9" * 27, "1" + "0" * 26, "9" * 28 + ".99", "1" * 4301, "9" * 5000]
EXOTIC_NUMBERS = ["1e999", "-1e999", "1E5", "-1", "-0", "-99999999999999999999999999", "NaN", "Infinity",
                  "0x10", "1_000", "00000000000000000000000000001", "1.5", ".5", "1,000,000,000,000,000,000,000,000"]
UNICODE_DIGITS = ["²", "³", "⒈", "٣", "１２", "߁", "𝟗", "৩", "¹²³"]
SEPARATORS = ["\u00a0", "\u2028", "\u2029", "\u0085", "\x00", "\x0b", "\x0c", "\ufeff", "\u200b", "\u3000"]
LINE_BREAKS = ["\n", "\r", "\r\n", "\u2028", "\u0085", "\x0b", "\x0c", "\x1c", "\u2029"]
FORMULA_PREFIXES = ["=", "+", "-", "@", "\t", "\r", "\uff1d"]
FORMULA_BODIES = ['HYPERLINK("http--evil")', "1+1", "cmd|' /C calc'!A0", "SUM(A1:A9)", "2024-05-06", ""]
CONTROLS = ["\x1b[31m", "\x1b[2J", "\x1b]0;title\x07", "\x08\x08", "\x7f", "\x9b31m", "\x07", "\x00"]


def numbers() -> st.SearchStrategy[str]:
    """Number-like text: huge, exotic, negative, or written with non-ASCII digits."""
    return st.one_of(st.sampled_from(HUGE_DIGITS + EXOTIC_NUMBERS + UNICODE_DIGITS),
                     st.integers(-10**30, 10**30).map(str),
                     st.text(st.characters(categories=["Nd", "No"]), min_size=1, max_size=6))


def line_break_text() -> st.SearchStrategy[str]:
    """Text holding a line break (of any kind) followed by the marker, as a forger would write it."""
    fakes = [f"{MARKER} 3 lines read: 3 judged (3 paid, 0 reduced, 0 denied)", f"{MARKER} Session X | 2024-05-06"]
    return st.builds(lambda head, brk, fake: head + brk + fake, st.sampled_from(["P1", "", "S9"]),
                     st.sampled_from(LINE_BREAKS), st.sampled_from(fakes))


def formula_text() -> st.SearchStrategy[str]:
    """Text a spreadsheet would run as a formula."""
    return st.builds(str.__add__, st.sampled_from(FORMULA_PREFIXES), st.sampled_from(FORMULA_BODIES))


def long_names() -> st.SearchStrategy[str]:
    """Names of 1,000 to 12,000 characters."""
    return st.builds(str.__mul__, st.sampled_from(["P", "Z", "s", "é", "a1-"]), st.integers(1_000, 12_000))


def odd_text() -> st.SearchStrategy[str]:
    """Anything that reaches an output: separators, controls, escapes, formulas, line breaks, long names."""
    return st.one_of(
        st.builds(str.__add__, st.sampled_from(["P1", "S1", "ACME", ""]),
                  st.sampled_from(SEPARATORS + CONTROLS + UNICODE_DIGITS)),
        line_break_text(), formula_text(), long_names(),
        st.text(st.characters(blacklist_categories=["Cs"]), max_size=12),
    )


# --- session records --------------------------------------------------------------------------------

FIELDS = ("session_id", "patient_id", "date", "payer", "provider_npi", "provider_credential", "code", "modifiers",
          "units", "minutes", "charge", "diagnoses", "prescription_by")
NUMERIC_FIELDS = ("units", "minutes", "charge", "provider_npi")
NPIS = [("1328719467", "DC"), ("1764203810", "LMT"), ("1184029555", "DC"), ("1548230675", "LMT")]
CODES = ["97140", "97124", "98940", "97110"]
PAYER = "ACME"
RULES = f"""payer {PAYER} "Acme (example)"
set massage = 97124, 97140
only 97124, 97140, 98940-98943, 97110
no massage same day as 98940-98943 unless modifier 59, XS
max $95 per session
max 3 visits per 30 days for massage
"""


@st.composite
def record(draw: st.DrawFn, patients: Sequence[str] = ("P1", "P2", "P3")) -> dict[str, str]:
    """One service line as field → text; each field is usually valid and sometimes hostile."""
    npi, credential = draw(st.sampled_from(NPIS))
    row = {"session_id": f"S{draw(st.integers(1, 6))}", "patient_id": draw(st.sampled_from(patients)),
           "date": draw(st.sampled_from(["2024-05-06", "2024-05-07", "05/08/2024"])), "payer": PAYER,
           "provider_npi": npi, "provider_credential": credential, "code": draw(st.sampled_from(CODES)),
           "modifiers": draw(st.sampled_from(["", "59", "XS"])), "units": draw(st.sampled_from(["1", "2", ""])),
           "minutes": draw(st.sampled_from(["", "15"])), "charge": draw(st.sampled_from(["40.00", "30", "1,070.00"])),
           "diagnoses": draw(st.sampled_from(["", "M54.50"])), "prescription_by": draw(st.sampled_from(["", "MD"]))}
    for field in draw(st.lists(st.sampled_from(FIELDS), max_size=3, unique=True)):
        bad = numbers() if field in NUMERIC_FIELDS else odd_text()
        where = draw(st.sampled_from(["replace", "suffix", "prefix"]))
        value = draw(bad)
        row[field] = value if where == "replace" else row[field] + value if where == "suffix" else value + row[field]
    return row


def records(min_size: int = 1, max_size: int = 8) -> st.SearchStrategy[list[dict[str, str]]]:
    return st.lists(record(), min_size=min_size, max_size=max_size)


def has_text(row: dict[str, str]) -> bool:
    """A CSV row that is not blank (a blank row is not a service line)."""
    return any(v.strip() for v in row.values())


def csv_text(rows: Sequence[dict[str, str]], endings: Sequence[str]) -> str:
    """A CSV file with a header and one record per row, each ended by its own line ending."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")  # so that a field holding a lone CR or LF is quoted
    parts = []
    for i, values in enumerate([list(FIELDS), *[[row[f] for f in FIELDS] for row in rows]]):
        out.seek(0)
        out.truncate()
        writer.writerow(values)
        parts.append(out.getvalue()[:-2] + endings[i % len(endings)])
    return "".join(parts)


def line_endings() -> st.SearchStrategy[list[str]]:
    """LF, CRLF, CR-only, or a mix."""
    return st.one_of(st.sampled_from([["\n"], ["\r\n"], ["\r"]]),
                     st.lists(st.sampled_from(["\n", "\r\n", "\r"]), min_size=2, max_size=5))


def _json_value(field: str, value: str, raw_numbers: bool) -> str:
    if raw_numbers and field in ("units", "minutes", "charge") and value and all(c in "-+.eE0123456789" for c in value):
        return value  # a JSON number as written, however large
    return json.dumps(value)


def json_session(rows: Sequence[dict[str, str]], raw_numbers: bool = True) -> str:
    """One session object (JSON text) from rows: session fields from the first row, lines from all."""
    head = rows[0]
    session_fields = ("session_id", "patient_id", "date", "payer")
    lines = ["{" + ", ".join(f'"{f}": {_json_value(f, r[f], raw_numbers)}' for f in FIELDS if f not in session_fields)
             + "}" for r in rows]
    fields = ", ".join(f'"{f}": {json.dumps(head[f])}' for f in session_fields)
    return "{" + fields + ', "lines": [' + ", ".join(lines) + "]}"


JSON_ODDITIES = ['"S\\ud800"', '"\\udc00P"', '"\\u0000"', '"\\u2028"', "1e999", "-1e999", "9" * 4301,
                 "[" * 5000 + "]" * 5000, '{"a":' * 3000 + "1" + "}" * 3000, "[" * 100_000, "null", "true", "{}"]


@st.composite
def json_sessions(draw: st.DrawFn) -> tuple[list[str], int, bool]:
    """JSON session objects (text), some with a raw oddity spliced into one field; the number of
    service lines they hold; and whether an oddity was spliced (then that count may not hold)."""
    texts: list[str] = []
    count = 0
    spliced = False
    for _ in range(draw(st.integers(1, 5))):
        rows = draw(records(1, 3))
        text = json_session(rows)
        count += len(rows)
        if draw(st.booleans()):
            field = draw(st.sampled_from(FIELDS))
            text = text.replace(f'"{field}": ', f'"{field}": {draw(st.sampled_from(JSON_ODDITIES))}, "_was": ', 1)
            spliced = True
        texts.append(text)
    return texts, count, spliced


# --- rule files -------------------------------------------------------------------------------------

def quoted(text: str) -> str:
    """A rule-file quoted text for `text`, with the escapes the language has."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def number_statements() -> st.SearchStrategy[str]:
    """Statements whose numbers are huge, exotic, negative or in other scripts."""
    templates = ["max ${n} per session", "max {n}% of $10 per session", "max ${n}.{n} per week for 97140",
                 "max {n} units per session", "max {n} visits per {n} days", "max {n} minutes per session",
                 "max {n} units of 97140 per calendar year", "only {n}", "only 9{n}-9{n}", "max $45 per session carc {n}",
                 "max {n}% of charge per session", "max {n} visits per {n} days effective from {n}-01-01"]
    return st.builds(lambda t, a, b: t.replace("{n}", a, 1).replace("{n}", b), st.sampled_from(templates),
                     numbers(), numbers())


def set_chain(length: int) -> str:
    """`set s0 = s1`, `set s1 = s2`, ... ending in a code: a chain `length` sets long."""
    return "".join(f"set s{i} = s{i + 1}\n" for i in range(length)) + f"set s{length} = 97140\nonly s0\n"


def write_include_chain(folder: Path, length: int) -> Path:
    """f0 includes f1, which includes f2, ... `length` includes deep; returns f0."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "f0.payer").write_text(f'payer {PAYER}\ninclude "f1"\n')
    for i in range(1, length):
        (folder / f"f{i}.payer").write_text(f'include "f{i + 1}"\n')
    (folder / f"f{length}.payer").write_text("only 97140\n")
    return folder / "f0.payer"


INCLUDE_PATHS = ['include "a\x00b"', 'include"sets"', 'include "s\\ets"', 'include "\x0csets"', 'include "s\x0cets"',
                 'include ""', 'include "/"', 'include "../../../../etc/passwd"', 'include "' + "x" * 5000 + '"',
                 'include "\\u0000"', "include sets", 'include "sets" "sets"', 'include "a\rb"']


def long_name_rules() -> st.SearchStrategy[str]:
    """Rule files with set names, rule names, payer ids or references thousands of characters long."""
    return st.builds(
        lambda name, other, form: form.format(name=name, other=other),
        st.builds(str.__mul__, st.sampled_from(["a", "b_", "x-"]), st.integers(1_000, 10_000)),
        st.builds(str.__mul__, st.sampled_from(["a", "c", "y"]), st.integers(1_000, 10_000)),
        st.sampled_from([f"payer {PAYER}\nset {{name}} = 97140\nonly {{other}}\n",
                         f"payer {PAYER}\n{{name}}: only 97140\n{{name}}: only 97124\n",
                         "payer {name}\nonly 97140\n",
                         f"payer {PAYER}\n{{name}}\n",
                         f"payer {PAYER}\nset {{name}} = 97140\nonly {{name}}\nonly {{other}}\n"]))


def hostile_rule_texts() -> st.SearchStrategy[str]:
    """A payer display name, rule name and source citation that reach every output."""
    return st.builds(
        lambda display, name, source: (f"payer {PAYER} {quoted(display)}\n{quoted(name)}: only 97124, 97140 "
                                       f"source {quoted(source)}\nmax $45 per session\n"),
        odd_text().filter(lambda t: "\r" not in t and "\x00" not in t),
        odd_text().filter(lambda t: "\r" not in t and "\x00" not in t and t.strip() != ""),
        odd_text().filter(lambda t: "\r" not in t and "\x00" not in t))


RULE_FILE_NAMES = ['=HYPERLINK("http--evil")', "+1+1", "-2", "@SUM(A1)", "\tx", "\rx", "a\nb", "a\x1b[31mb",
                   "a\u2028b", "normal"]
