"""benchmarks/reference.payer written by hand as a columnar polars program: sessions CSV → the
same bytes as `payrules check FILE --rules benchmarks/reference.payer --format csv`.

    python benchmarks/polars_reference.py sessions.csv --rules benchmarks/reference.payer -o out.csv
    POLARS_MAX_THREADS=1 python benchmarks/polars_reference.py ...     # on one thread

It is the yardstick for `payrules check` end to end: a program written for this one policy,
with its five explanation sentences written out, that reads, judges and writes the whole file
with polars expressions: a group_by over the patient-day for the same-day rule, running sums
over each session for the unit and amount caps, each field's values parsed once per distinct
value, and each sentence built only for the lines it explains.

It judges valid input only. A file on which `payrules check` would write a line as `not
judged` (a record error), or whose rows payrules would number differently (blank rows, line
breaks inside cells), is refused with exit status 2 and the first row it cannot judge: it is
never written differently. Otherwise the exit status is that of `payrules check`: 0 when every
line is paid in full, 1 when some line is not. `run(path, out)` times one run in a fresh process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

if TYPE_CHECKING:
    import polars as pl

HERE = Path(__file__).resolve().parent
REFERENCE = HERE / "reference.payer"

FIELDS = ("session_id", "patient_id", "date", "payer", "provider_npi", "provider_credential", "code",
          "modifiers", "units", "minutes", "charge", "diagnoses", "prescription_by")
REQUIRED = ("session_id", "patient_id", "date", "payer", "provider_npi", "code", "charge")
OUTPUT_HEADER = ("file,row,session_id,patient_id,date,payer,line,code,modifiers,units,charge,allowed,status,"
                 "carc,rarc,rules,reasons\r\n")

# --- the policy, by hand (benchmarks/reference.payer) --------------------------------------------

PAYER = "bench"  # casefolded, as payrules matches payer ids
MASSAGE = ["97124", "97140"]
CMT = ["98940", "98941", "98942"]
COVERED = MASSAGE + CMT + ["97010"]
PROVIDERS = ["DC", "PT", "MD"]
EXEMPT = ["59", "XS"]
UNIT_CAP = 4
SESSION_CAP = 9000  # cents

# The reasons in the order the policy records them on a line: the three denials in rule-file
# order (covered, providers, same day), then the unit cap and the amount cap, which look only
# at lines not denied. (bit, carc, rarc, rule-file line, rule name)
REASONS = ((1, "204", "", 9, "covered"), (2, "170", "N95", 12, "providers"), (4, "97", "N20", 13, "massage-with-cmt"),
           (8, "151", "N362", 10, "massage-units"), (16, "45", "", 11, "session-cap"))

CREDENTIALS = {
    "LMT": "licensed massage therapist", "DC": "doctor of chiropractic", "PT": "physical therapist",
    "PTA": "physical therapist assistant", "MD": "doctor of medicine", "DO": "doctor of osteopathic medicine",
    "NP": "nurse practitioner", "PA": "physician assistant", "OT": "occupational therapist",
    "OTA": "occupational therapy assistant", "SLP": "speech-language pathologist", "CA": "chiropractic assistant",
    "ATC": "certified athletic trainer", "LAC": "licensed acupuncturist",
}
"""Credentials payrules accepts, with the words its sentences use for them."""

# --- what payrules accepts (payrules.fields, payrules.domain) ------------------------------------

MAX_FIELD_CHARS = 1_000
MAX_WHOLE = 999_999_999
MAX_SESSION_LINES = 5_000
MAX_DAY_LINES = 100_000
CODE = r"^(?:[0-9]{5}|[0-9]{4}[FTU]|[A-Z][0-9]{4})$"
MODIFIER = r"^[A-Z0-9]{2}$"
ICD10 = r"^[A-Z][0-9][0-9A-Z](?:\.?[0-9A-Z]{1,4})?$"
LIST_SEPARATORS = r"[\s;,]+"
CHARGE = r"^([0-9]{1,9})(?:\.([0-9]{1,2}))?$"
"""The amounts read here: payrules also reads `$1,234.5` and `45.000`, which are refused here."""

WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())
"""What Python's `str.strip()` removes (payrules strips every field with it)."""

FORMULA_STARTS = "=+-@\t\r\n\uff1d\uff0b\uff0d\uff20"
"""First characters after which payrules writes user text as `'text` (never a spreadsheet formula)."""

CSV_SPECIAL = r'[,"\r\n]'
"""Characters that make the csv module quote a cell."""


class OutOfScope(Exception):
    """Input this program does not judge (payrules would reject it, or number its rows its own way)."""


def cell(text: str) -> str:
    """A constant text as payrules writes it in a CSV cell (formula guard, then csv quoting)."""
    if text[:1] and text[:1] in FORMULA_STARTS:
        text = "'" + text
    if any(c in text for c in ',"\r\n'):
        text = '"' + text.replace('"', '""') + '"'
    return text


def with_article(credential: str) -> str:
    return f"{'an' if credential[:1] in 'AEFHILMNORSX' else 'a'} {credential}"


# --- expressions -----------------------------------------------------------------------------------


def _text_cell(expr: pl.Expr) -> pl.Expr:
    """User text as payrules writes a cell: `'` before a formula start, then quotes around a
    cell holding a comma, quote or line break (with its quotes doubled)."""
    import polars as pl

    guarded = pl.when(expr.str.slice(0, 1).is_in(list(FORMULA_STARTS))).then(pl.lit("'") + expr).otherwise(expr)
    return pl.when(guarded.str.contains(CSV_SPECIAL)) \
        .then(pl.lit('"') + guarded.str.replace_all('"', '""', literal=True) + pl.lit('"')).otherwise(guarded)


def _thousands(n: pl.Expr, largest: int) -> pl.Expr:
    """Whole numbers from 0 to `largest` with thousands separators (Python's `f"{n:,}"`); only
    as many branches as `largest` has groups of three digits."""
    import polars as pl

    out = n.cast(pl.String)
    for power in range(1, (len(str(max(largest, 0))) - 1) // 3 + 1):
        step = 10 ** (3 * power)
        low = [(n // 10 ** (3 * g) % 1000).cast(pl.String).str.zfill(3) for g in range(power - 1, -1, -1)]
        out = pl.when(n >= step).then(pl.concat_str([(n // step).cast(pl.String), *low], separator=",")) \
            .otherwise(out)
    return out


def _money(cents: pl.Expr) -> pl.Expr:
    """`12345.67`, as payrules writes amounts in cells."""
    import polars as pl

    return pl.concat_str([(cents // 100).cast(pl.String), pl.lit("."), (cents % 100).cast(pl.String).str.zfill(2)])


# --- reading and validating ------------------------------------------------------------------------


def _read(source: bytes) -> pl.DataFrame:
    """The rows of a sessions CSV, every field as text (named by field), or OutOfScope when
    payrules would read or number them differently than polars does."""
    import polars

    if source.startswith(b"\xef\xbb\xbf"):
        source = source[3:]
    try:
        first = source.split(b"\n", 1)[0].decode("utf-8")
    except UnicodeDecodeError:
        raise OutOfScope("the header is not UTF-8 text") from None
    header = ["_".join(h.strip().lower().replace("-", " ").split()) for h in first.rstrip("\r\n").split(",")]
    if sorted(header) != sorted(FIELDS):
        raise OutOfScope(f"the header must name exactly the fields {', '.join(FIELDS)} (payrules also reads "
                         "column mappings, missing optional columns and lists spread over several columns)")
    # payrules numbers rows by physical line and skips blank ones; polars counts records.
    lines = source.count(b"\n") + (0 if source.endswith(b"\n") else 1)
    if source.count(b"\r") != source.count(b"\r\n"):
        raise OutOfScope("a line ends in a lone CR")
    try:
        rows = polars.read_csv(source, infer_schema=False, has_header=True, new_columns=header,
                               truncate_ragged_lines=True, encoding="utf8")
    except polars.exceptions.PolarsError as error:
        raise OutOfScope(f"polars cannot read it as CSV ({str(error).splitlines()[0]})") from None
    if rows.height + 1 != lines:
        raise OutOfScope("a row is blank or a quoted cell holds a line break, so payrules would number rows by "
                         "physical line where polars numbers records")
    rows = rows.select([polars.col(f).fill_null("") for f in FIELDS])
    # Strip only the fields that have something to strip (usually none).
    edge = f"^[{WHITESPACE}]|[{WHITESPACE}]$"
    padded = rows.select([polars.col(f).str.contains(edge).any() for f in FIELDS]).row(0)
    return rows.with_columns([polars.col(f).str.strip_chars(WHITESPACE) for f, pad in zip(FIELDS, padded) if pad]) \
        .with_columns(polars.int_range(2, polars.len() + 2, dtype=polars.Int64).alias("row"))


def _fields(rows: pl.DataFrame) -> pl.DataFrame:
    """The validated values of every line, or OutOfScope for the first row that payrules would
    write as `not judged`: its messages and their place in the output are payrules' validation,
    not this policy."""
    import polars as pl

    c = pl.col
    text = {f: c(f) for f in FIELDS}
    upper = {f: c(f).str.to_uppercase() for f in FIELDS}
    npi_digits = [c("provider_npi").str.slice(k, 1).cast(pl.Int64, strict=False) for k in range(10)]
    # The NPI check digit (Luhn over "80840" + the first nine digits; the prefix adds 24).
    luhn = pl.sum_horizontal([(d * 2 - 9 * (d * 2 > 9).cast(pl.Int64)) if k % 2 == 0 else d
                              for k, d in enumerate(npi_digits[:9])]) + 24
    credentials = list(CREDENTIALS) + [""]
    words = {cred: f"{with_article(cred)} ({text_})" for cred, text_ in CREDENTIALS.items()}

    def tokens(field: str) -> pl.Expr:
        listed = upper[field].str.replace_all(LIST_SEPARATORS, " ").str.strip_chars(" ")
        return pl.when(listed == "").then(pl.lit([], pl.List(pl.String))).otherwise(listed.str.split(" ")) \
            .alias(f"{field}_list")

    specs: dict[str, dict[str, pl.Expr]] = {
        "date": {"date_ok": text["date"].str.contains(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
                 & text["date"].str.to_date("%Y-%m-%d", strict=False).is_not_null(),
                 "date_rank": text["date"].rank("dense").cast(pl.Int64)},
        "payer": {"payer_ok": text["payer"].str.to_lowercase() == PAYER},
        "provider_npi": {"npi_ok": text["provider_npi"].str.contains(r"^[0-9]{10}$")
                         & ((10 - luhn % 10) % 10 == npi_digits[9]).fill_null(False)},
        "provider_credential": {"cred": upper["provider_credential"],
                                "cred_ok": upper["provider_credential"].is_in(credentials),
                                "provider_ok": upper["provider_credential"].is_in(PROVIDERS),
                                "who": upper["provider_credential"].replace_strict(
                                    words, default="a provider with no credential on record")},
        "prescription_by": {"prescriber_ok": upper["prescription_by"].is_in(credentials)},
        "code": {"code_text": upper["code"], "code_ok": upper["code"].str.contains(CODE),
                 "massage": upper["code"].is_in(MASSAGE), "cmt": upper["code"].is_in(CMT),
                 "covered": upper["code"].is_in(COVERED)},
        "modifiers": {"modifiers_ok": tokens("modifiers").list.eval(
            pl.element().str.contains(MODIFIER)).list.all(),
            "modifiers_text": tokens("modifiers").list.unique().list.sort().list.join(" "),
            "exempt": tokens("modifiers").list.eval(pl.element().is_in(EXEMPT)).list.any()},
        "units": {"unit_count": pl.when(text["units"] == "").then(pl.lit("1")).otherwise(text["units"])
                  .str.to_integer(strict=False)},
        "minutes": {"minutes_ok": (text["minutes"] == "") | text["minutes"].str.contains(r"^0*[0-9]{1,9}$")},
        "charge": {"charge_cents": text["charge"].str.extract(CHARGE, 1).cast(pl.Int64) * 100
                   + text["charge"].str.extract(CHARGE, 2).fill_null("0").str.pad_end(2, "0").cast(pl.Int64)},
        "diagnoses": {"diagnoses_ok": tokens("diagnoses").list.eval(pl.element().str.contains(ICD10))
                      .list.all()},
    }
    specs["units"]["units_ok"] = c("unit_count").is_between(1, MAX_WHOLE).fill_null(False) \
        & text["units"].str.contains(r"^[0-9]*$")
    specs["charge"]["charge_ok"] = c("charge_cents").is_not_null()
    refusals = {
        "date_ok": "the date is not a calendar date as YYYY-MM-DD (payrules also reads MM/DD/YYYY)",
        "payer_ok": "the payer is not BENCH, the payer of the reference policy",
        "npi_ok": "the NPI is not 10 digits with a valid check digit",
        "cred_ok": "the provider credential is unknown", "prescriber_ok": "the prescriber credential is unknown",
        "code_ok": "the code is not a procedure code", "modifiers_ok": "a modifier is not two letters or digits",
        "units_ok": "the units are not a whole number from 1 to 999,999,999",
        "minutes_ok": "the minutes are not a whole number up to 999,999,999",
        "charge_ok": "the charge is not an amount such as 45.00 up to 999999999.99",
        "diagnoses_ok": "a diagnosis is not an ICD-10-CM code",
    }
    columns = [rows.select("row", "session_id", "patient_id")]
    problems: list[tuple[int, str]] = []
    for field, derive in specs.items():
        # "units_ok" and "charge_ok" read the parsed value: derive it first.
        kept = [k for k in derive if k not in refusals]
        checks = {k: v for k, v in derive.items() if k in refusals}
        values = rows.select(pl.col(field).unique()).with_columns(**{k: derive[k] for k in kept}) \
            .with_columns(**checks)
        columns.append(rows.select([pl.col(field).replace_strict(values[field], values[k]).alias(k) for k in kept]))
        for check in checks:
            bad = values.filter(~pl.col(check))[field]
            if len(bad):
                row = rows.filter(pl.col(field).is_in(bad.implode()))["row"][0]
                problems.append((row, refusals[check]))
    lengths = rows.select([(pl.col(f).str.len_bytes() > MAX_FIELD_CHARS).any() for f in FIELDS]).row(0)
    if any(lengths):
        long = rows.filter(pl.any_horizontal([pl.col(f).str.len_chars() > MAX_FIELD_CHARS for f in FIELDS]))
        if long.height:
            problems.append((long["row"][0], f"a field is longer than {MAX_FIELD_CHARS:,} characters"))
    empty = rows.filter(pl.any_horizontal([pl.col(f) == "" for f in REQUIRED]))
    if empty.height:
        problems.append((empty["row"][0], "a field that payrules requires is empty"))
    if problems:
        row, why = min(problems)
        raise OutOfScope(f"row {row}: {why}; payrules writes such a line as `not judged`, which this program "
                         "does not reproduce")
    return pl.concat(columns, how="horizontal").with_columns(rows["date"], rows["payer"], rows["provider_npi"])


# --- judging -------------------------------------------------------------------------------------


def judge(source: bytes, file_label: str, rules_label: str, out: Path | IO[bytes]) -> bool:
    """Judge the sessions CSV `source` and write the decisions to `out` (a path, or a binary
    stream); True when every line is paid in full. `file_label` and `rules_label` are the paths
    as given on the command line."""
    import polars as pl

    c = pl.col
    rows = _read(source)
    if rows.height == 0:
        if isinstance(out, Path):
            out.write_bytes(OUTPUT_HEADER.encode())
        else:
            out.write(OUTPUT_HEADER.encode())
        return True
    df = _fields(rows)
    del rows

    # Sessions in the order payrules writes them (first seen), each session's lines in input
    # order. Exports keep a session's rows together; otherwise the rows are sorted so.
    session = c("session_id").rle_id()
    if df.select(session.max() + 1 != c("session_id").n_unique()).item():
        df = df.sort(c("row").min().over("session_id"), "row")
    df = df.with_columns(session.alias("session"), pl.int_range(pl.len(), dtype=pl.Int64).alias("pos"))
    starts = c("session") != c("session").shift(1, fill_value=-1)

    def in_session(expr: pl.Expr) -> pl.Expr:
        """The sum of `expr` over the earlier lines of each line's session: a running sum
        restarted at each session (sessions are contiguous, so no hashing is needed)."""
        before = expr.cum_sum() - expr
        return before - pl.when(starts).then(before).forward_fill()

    df = df.with_columns((c("pos") - pl.when(starts).then(c("pos")).forward_fill() + 1).alias("number"))
    one_head = (starts | ((c("patient_id") == c("patient_id").shift(1)) & (c("date") == c("date").shift(1))
                          & (c("payer") == c("payer").shift(1)))).all()
    checks = df.select(one_head.alias("one_head"), c("number").max().alias("longest")).row(0, named=True)
    if not checks["one_head"]:
        row = df.filter(~(starts | ((c("patient_id") == c("patient_id").shift(1))
                                    & (c("date") == c("date").shift(1)) & (c("payer") == c("payer").shift(1)))))
        raise OutOfScope(f"row {row['row'][0]}: a session's rows do not share one patient, date and payer; "
                         "payrules writes such a line as `not judged`, which this program does not reproduce")
    if checks["longest"] > MAX_SESSION_LINES:
        raise OutOfScope(f"a session has more than {MAX_SESSION_LINES:,} lines; payrules writes the lines after "
                         "them as `not judged`, which this program does not reproduce")

    # line 13, no massage same day as CMT: the patient-days with CMT, and the first CMT line of
    # each (in output order), which the sentence cites.
    df = df.with_columns((c("patient_id").cast(pl.Categorical).to_physical().cast(pl.Int64) * 4_000_000
                          + c("date_rank")).alias("day"))
    if df.group_by("day").len().select(c("len").max()).item() > MAX_DAY_LINES:
        raise OutOfScope(f"a patient has more than {MAX_DAY_LINES:,} lines on one day; payrules writes the lines "
                         "after them as `not judged`, which this program does not reproduce")
    days = df.filter(c("cmt")).group_by("day").agg(
        pl.len().alias("cmt_lines"), c("code_text").first().alias("first_code"),
        c("provider_npi").first().alias("first_npi"), c("session_id").first().alias("first_session"),
        c("number").first().alias("first_number"))
    same_day = df.filter(c("massage") & ~c("exempt")).select("pos", "session_id", "day", "date") \
        .join(days, on="day", how="inner")
    flagged = pl.repeat(False, df.height, eager=True).alias("same_day").scatter(same_day["pos"], True)
    df = df.with_columns(flagged).with_columns(
        (~c("covered")).alias("r_covered"),
        (c("massage") & ~c("provider_ok")).alias("r_providers"),
    ).with_columns((c("r_covered") | c("r_providers") | c("same_day")).alias("denied"))

    # line 10, max 4 units of massage per session: units that earlier lines kept, as a running sum.
    counted = pl.when(~c("denied") & c("massage")).then(c("unit_count")).otherwise(0)
    df = df.with_columns(
        (UNIT_CAP - in_session(counted)).clip(lower_bound=0).alias("units_left"),
        pl.when(c("denied")).then(0).otherwise(c("charge_cents")).alias("before_units"),
    ).with_columns((~c("denied") & c("massage") & (c("unit_count") > c("units_left"))).alias("r_units")) \
        .with_columns(pl.when(c("r_units"))
                      .then((c("before_units") * c("units_left") * 2 + c("unit_count")) // (2 * c("unit_count")))
                      .otherwise(c("before_units")).alias("before_cap"))
    # line 11, max $90 per session: the amount earlier lines were allowed, as a running sum.
    df = df.with_columns((SESSION_CAP - in_session(c("before_cap"))).clip(lower_bound=0).alias("cap_left")) \
        .with_columns((~c("denied") & (c("before_cap") > c("cap_left"))).alias("r_cap")) \
        .with_columns(pl.when(c("r_cap")).then(c("cap_left")).otherwise(c("before_cap")).alias("allowed"))

    # The sentences, each built only on the lines it explains. No sentence starts with a
    # formula character, and the only user text in them that may hold a quote is a session id,
    # whose quotes are doubled here, so a cell is quoted below by adding the outer quotes only.
    df = df.select("pos", "row", "session_id", "patient_id", "date", "payer", "number", "code_text", "modifiers_text",
                   "unit_count", "charge_cents", "allowed", "denied", "provider_npi", "who", "r_covered", "r_providers",
                   "same_day", "r_units", "r_cap", "units_left", "before_units", "before_cap", "cap_left")
    largest = df.select(c("before_units").max()).item()

    def dollars(cents: pl.Expr) -> pl.Expr:
        return pl.concat_str([pl.lit("$"), _thousands(cents // 100, largest // 100), pl.lit("."),
                              (cents % 100).cast(pl.String).str.zfill(2)])

    extra = c("cmt_lines") - 1
    sentences = [
        df.filter(c("r_covered")).select("pos", text=c("code_text") + pl.lit(
            " is not covered: this payer pays only for massage (97124, 97140), 97010, CMT (98940-98942).")),
        df.filter(c("r_providers")).select("pos", text=pl.concat_str([
            c("code_text"), pl.lit(" was billed under NPI "), c("provider_npi"), pl.lit(", "), c("who"),
            pl.lit("; this payer pays massage (97124, 97140) only when the rendering provider is a DC or PT or MD.")])),
        same_day.select("pos", text=pl.concat_str([
            c("first_code"), pl.lit(" was billed for this patient on "), c("date"), pl.lit(" by NPI "), c("first_npi"),
            pl.when(c("first_session") == c("session_id")).then(pl.lit(" (in this session"))
            .otherwise(pl.lit(" (in session ") + c("first_session").str.replace_all('"', '""', literal=True)),
            pl.lit(", line "), c("first_number").cast(pl.String), pl.lit(")"),
            pl.when(extra > 0).then(pl.concat_str([
                pl.lit(", and "), _thousands(extra, MAX_DAY_LINES), pl.lit(" more such line"),
                pl.when(extra > 1).then(pl.lit("s")).otherwise(pl.lit("")), pl.lit(" that day")]))
            .otherwise(pl.lit("")),
            pl.lit("; this payer does not pay massage (97124, 97140) on the same day as CMT (98940-98942). "
                   "The exception for modifier 59 or XS does not apply: this line has none of them.")])),
        df.filter(c("r_units")).select("pos", text=pl.concat_str([
            pl.lit("Earlier lines of this session used "), (UNIT_CAP - c("units_left")).cast(pl.String),
            pl.lit(f" of the {UNIT_CAP} units of massage (97124, 97140) this payer allows per session; "),
            c("unit_count").cast(pl.String), pl.lit(" were billed on this line, "), c("units_left").cast(pl.String),
            pl.lit(" can be paid: allowed reduced from "), dollars(c("before_units")), pl.lit(" to "),
            dollars(c("before_cap")), pl.lit(".")])),
        df.filter(c("r_cap")).select("pos", text=pl.when(c("cap_left") == 0).then(pl.concat_str([
            pl.lit("This payer allows at most $90.00 per session, and earlier lines of this session already used "
                   "all of it: allowed reduced from "), dollars(c("before_cap")), pl.lit(" to $0.00.")]))
            .otherwise(pl.concat_str([pl.lit("This payer allows at most $90.00 per session: allowed reduced from "),
                                      dollars(c("before_cap")), pl.lit(" to "), dollars(c("cap_left")), pl.lit(".")]))),
    ]
    empty = pl.repeat(None, df.height, dtype=pl.String, eager=True)
    texts = [empty.clone().scatter(s["pos"], s["text"]).alias(f"reason{i}") for i, s in enumerate(sentences)]
    reasons = pl.concat_str([c(t.name) for t in texts], separator=" | ", ignore_nulls=True)

    # The carc, rarc and rules cells depend only on which rules fired: one text per combination.
    mask = pl.sum_horizontal([pl.when(c(flag)).then(bit).otherwise(0) for flag, (bit, *_) in zip(
        ["r_covered", "r_providers", "same_day", "r_units", "r_cap"], REASONS)])
    combos = {}
    for combo in range(32):
        fired = [r for r in REASONS if combo & r[0]]
        combos[combo] = ",".join(cell(t) for t in (
            ";".join(r[1] for r in fired), ";".join(r[2] for r in fired),
            "; ".join(f"{rules_label}:{r[3]} [{r[4]}]" for r in fired)))

    def user_cell(name: str) -> pl.Expr:
        """A text column as payrules writes it; unchanged when no value needs a guard or quotes."""
        needs = df.select((c(name).str.slice(0, 1).is_in(list(FORMULA_STARTS))
                           | c(name).str.contains(CSV_SPECIAL)).any()).item()
        return _text_cell(c(name)) if needs else c(name)

    status = pl.when(c("denied")).then(pl.lit("denied")).when(c("allowed") < c("charge_cents")).then(pl.lit("reduced")) \
        .otherwise(pl.lit("paid"))
    result = df.with_columns(texts).select(pl.concat_str([
        pl.lit(cell(file_label)), c("row").cast(pl.String), user_cell("session_id"), user_cell("patient_id"),
        c("date"), user_cell("payer"), c("number").cast(pl.String), c("code_text"), c("modifiers_text"),
        c("unit_count").cast(pl.String), _money(c("charge_cents")), _money(c("allowed")), status,
        mask.replace_strict(combos, return_dtype=pl.String),
        pl.when(reasons.str.contains(CSV_SPECIAL)).then(pl.lit('"') + reasons + pl.lit('"')).otherwise(reasons),
    ], separator=",").alias(OUTPUT_HEADER.removesuffix("\r\n")),
        (c("denied") | (c("allowed") < c("charge_cents"))).any().alias("unpaid"))
    # Every cell is CSV text already: written as it is, one row per line, under a header that
    # is the column's name (polars writes to a path without Python in the way).
    result.drop("unpaid").write_csv(out, include_header=True, quote_style="never", line_terminator="\r\n")
    return not result["unpaid"][0]


# --- command line and timing ---------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sessions", type=Path, help="sessions CSV (as from benchmarks/generate.py)")
    parser.add_argument("--rules", type=Path, default=Path(os.path.relpath(REFERENCE)),
                        help="benchmarks/reference.payer, as `payrules check` is given it (its path is in the output)")
    parser.add_argument("-o", "--output", type=Path, help="write the decisions here instead of stdout")
    args = parser.parse_args(argv)
    try:
        if args.rules.read_bytes() != REFERENCE.read_bytes():
            parser.exit(2, f"error: {args.rules} is not benchmarks/reference.payer; this program is that one "
                           "policy written by hand\n")
        source = args.sessions.read_bytes()
    except OSError as error:
        parser.exit(2, f"error: {error.filename}: cannot read ({error.strerror})\n")
    try:
        paid = judge(source, str(args.sessions), str(args.rules),
                     sys.stdout.buffer if args.output is None else args.output)
    except OutOfScope as error:  # raised before anything is written
        parser.exit(2, f"error: {args.sessions}: {error}\n")
    return 0 if paid else 1


def run(path: Path, out: Path, threads: int | None = None, rules: Path = REFERENCE) -> float:
    """Wall seconds of one run in a fresh process (start-up and imports included, as for
    `payrules check`), on `threads` threads (None: polars' default, one per CPU). `rules` is
    written into the output as given: pass the path `payrules check` was given to compare."""
    env = dict(os.environ)
    if threads is not None:
        env["POLARS_MAX_THREADS"] = str(threads)
    start = time.perf_counter()
    done = subprocess.run([sys.executable, str(Path(__file__).resolve()), str(path), "--rules", str(rules),
                           "--output", str(out)], env=env, check=False, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        raise RuntimeError(f"the polars reference program failed on {path}: {done.stderr.strip()}")
    return seconds


if __name__ == "__main__":
    sys.exit(main())
