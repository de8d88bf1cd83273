"""Billing vocabulary → shapes and known values: procedure codes, credentials, modifiers, money.

Everything here is plain data shared by the checker (rule files) and the record reader
(session files), so that both accept and reject exactly the same spellings.
"""

from __future__ import annotations

import functools
import os
import re
from collections import Counter
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation
from pathlib import Path

# A procedure code is a CPT code (5 digits), a CPT category II/III or PLA code
# (4 digits and F, T or U), or a HCPCS level II code (a letter and 4 digits).
CODE_RE = re.compile(r"^(?:[0-9]{5}|[0-9]{4}[FTU]|[A-Z][0-9]{4})$")

CODE_EXAMPLES = "a procedure code such as 97140, 0042T or S8990"


def code_family(code: str) -> str:
    """The family a valid code belongs to; a range must stay inside one family."""
    if code.isdigit():
        return "CPT"
    if code[0].isdigit():
        return f"CPT category {code[-1]}"
    return f"HCPCS {code[0]}"


def code_number(code: str) -> int:
    """The numeric part of a code, used to order and expand ranges within a family."""
    return int(code[:5]) if code.isdigit() else int(code[1:] if code[0].isalpha() else code[:4])


def code_from_number(family_of: str, number: int) -> str:
    """The code of the same family as `family_of` whose numeric part is `number`."""
    if family_of.isdigit():
        return f"{number:05d}"
    if family_of[0].isalpha():
        return f"{family_of[0]}{number:04d}"
    return f"{number:04d}{family_of[-1]}"


# Rendering-provider credentials payrules knows. Matching is case-insensitive.
CREDENTIALS: dict[str, str] = {
    "LMT": "licensed massage therapist",
    "DC": "doctor of chiropractic",
    "PT": "physical therapist",
    "PTA": "physical therapist assistant",
    "MD": "doctor of medicine",
    "DO": "doctor of osteopathic medicine",
    "NP": "nurse practitioner",
    "PA": "physician assistant",
    "OT": "occupational therapist",
    "OTA": "occupational therapy assistant",
    "SLP": "speech-language pathologist",
    "CA": "chiropractic assistant",
    "ATC": "certified athletic trainer",
    "LAC": "licensed acupuncturist",
}

def with_article(credential: str) -> str:
    """`an LMT`, `a DC`: the article follows how the letters are spoken."""
    return f"{'an' if credential[:1] in 'AEFHILMNORSX' else 'a'} {credential}"


def describe_codes(codes: frozenset[str]) -> str:
    """`97124, 97140, 98940-98943`: sorted, with runs of three or more codes as ranges."""
    by_family: dict[str, list[int]] = {}
    examples: dict[str, str] = {}
    for code in codes:
        family = code_family(code) + (code[0] if code[0].isalpha() else "")
        by_family.setdefault(family, []).append(code_number(code))
        examples[family] = code
    parts: list[tuple[str, str]] = []
    for family, numbers in by_family.items():
        numbers.sort()
        run = [numbers[0]]
        for n in [*numbers[1:], None]:
            if n is not None and n == run[-1] + 1:
                run.append(n)
                continue
            low, high = (code_from_number(examples[family], x) for x in (run[0], run[-1]))
            if len(run) >= 3:
                parts.append((low, f"{low}-{high}"))
            else:
                parts.extend((code_from_number(examples[family], x),) * 2 for x in run)
            if n is not None:
                run = [n]
    return ", ".join(text for _, text in sorted(parts))


MODIFIER_RE = re.compile(r"^[A-Z0-9]{2}$")

BENEFIT_PERIODS = frozenset({"week", "month", "year", "plan_year", "days", "lifetime"})
"""Periods whose limit is a benefit maximum, answered with CARC 119 once used up. `day` is not
one: a cap per date of service is a fee or unit cap (CARC 45, or 151 for units)."""

TIME_RULES = {"cms": "the CMS 8-minute rule", "ama": "the AMA midpoint rule"}
"""How units of timed codes follow from minutes (`units by cms|ama rule`), and their names."""

# ICD-10-CM: a letter, a digit, a letter or digit, then up to four more after an optional dot.
# The April 2026 release also has categories with the letter A second and a digit third (QA0).
ICD10_RE = re.compile(r"^[A-Z](?:[0-9][0-9A-Z]|A[0-9])(?:\.?[0-9A-Z]{1,4})?$")

# CARC: 1-3 digits, or a letter and 1-2 digits (B7, P14). RARC: 1-2 letters and 1-3 digits (N130, MA01).
CARC_RE = re.compile(r"^(?:[0-9]{1,3}|[A-Z][0-9]{1,2})$")
RARC_RE = re.compile(r"^[A-Z]{1,2}[0-9]{1,3}$")

_MONEY_RE = re.compile(r"^\$?(-?)([0-9]+(?:,[0-9]{3})*|[0-9]+)(?:\.([0-9]*))?$")

MAX_MONEY = Decimal("999999999.99")
"""The largest amount payrules accepts, in a rule file or a record: $999,999,999.99. Larger
amounts are refused with a worded error (they are typing slips, and past 28 digits exact
decimal arithmetic would fail)."""

MAX_MONEY_TEXT = "$999,999,999.99"


def money_too_large(amount: Decimal) -> bool:
    """Whether `amount` is beyond `MAX_MONEY` (either sign)."""
    return abs(amount) > MAX_MONEY


def parse_money(text: str) -> Decimal | None:
    """`$1,234.50` or `45` → Decimal; None when it is not money at all."""
    match = _MONEY_RE.match(text.strip())
    if match is None:
        return None
    sign, whole, frac = match.groups()
    try:
        return Decimal(f"{sign}{whole.replace(',', '')}.{frac or '0'}")
    except InvalidOperation:  # pragma: no cover - the pattern admits only digits
        return None


def to_cents(amount: Decimal) -> int:
    """Exact cents of an amount that has at most two decimals."""
    return int(amount * 100)


@functools.lru_cache(maxsize=65_536)
def format_cents(cents: int) -> str:
    """1234 → `12.34`; the form amounts take in every output."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}{cents // 100}.{cents % 100:02d}"


def dollars(cents: int) -> str:
    """1234567 → `$12,345.67`; the form amounts take in sentences."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"{sign}${cents // 100:,}.{cents % 100:02d}"


def npi_is_valid(npi: str) -> bool:
    """10 digits whose last is the Luhn check digit computed with the 80840 prefix."""
    if len(npi) != 10 or not (npi.isascii() and npi.isdigit()):
        return False
    total = 0
    for i, ch in enumerate(reversed("80840" + npi[:9])):
        digit = int(ch)
        if i % 2 == 0:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return (10 - total % 10) % 10 == int(npi[9])


SUGGEST_MAX_LENGTH = 100
"""Words and options longer than this get no "did you mean": nobody mistypes a name that long,
and comparing it would only cost time (an unknown 10,000-character payer id, say)."""


CACHE_DIR_ENV = "PAYRULES_CACHE_DIR"
NO_CACHE_ENV = "PAYRULES_NO_CACHE"


def cache_dir() -> Path | None:
    """Where payrules keeps what it worked out once (compiled rules, the billable ICD-10-CM
    codes) between runs; None when caching is off."""
    if os.environ.get(NO_CACHE_ENV):
        return None
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "payrules"


def closest(word: str, options: Iterable[str]) -> str | None:
    """The option nearest to `word` by edit distance (ignoring case), for "did you mean" help.

    Ties go to the option that shares the longest prefix with `word`, then to the first listed.
    An option is near when at most a third of the shorter word's letters (at least one) differ.
    """
    if len(word) > SUGGEST_MAX_LENGTH:
        return None
    target = word.casefold()
    best: tuple[int, int, int] | None = None
    choice = None
    for order, option in enumerate(options):
        if len(option) > SUGGEST_MAX_LENGTH:
            continue
        candidate = option.casefold()
        limit = max(1, min(len(target), len(candidate)) // 3)
        if best is not None:
            limit = min(limit, best[0])  # a farther option cannot win; an equal one may, on its prefix
        distance = _edit_distance(target, candidate, limit)
        if distance > limit:
            continue
        prefix = len(os.path.commonprefix([target, candidate]))
        key = (distance, -prefix, order)
        if best is None or key < best:
            best, choice = key, option
    return choice


@functools.lru_cache(maxsize=4096)
def _edit_distance(a: str, b: str, limit: int) -> int:
    """Edits (insert, delete, substitute, swap two neighbours) that turn `a` into `b`, or
    `limit + 1` as soon as it is sure to be more than `limit`.

    Cached: a reader asks again for every session that names the same unknown payer.
    """
    over = limit + 1
    if abs(len(a) - len(b)) > limit:
        return over
    # A shared start or end costs nothing; only the middle needs the table.
    start = len(os.path.commonprefix([a, b]))
    a, b = a[start:], b[start:]
    end = len(os.path.commonprefix([a[::-1], b[::-1]]))
    a, b = a[: len(a) - end], b[: len(b) - end]
    # Every edit fixes at most one letter that `a` has too many of, and one that `b` has.
    extra_a, extra_b = Counter(a) - Counter(b), Counter(b) - Counter(a)
    if max(extra_a.total(), extra_b.total()) > limit:
        return over
    return _banded_distance(a, b, limit)


def _banded_distance(a: str, b: str, limit: int) -> int:
    """The distance by the table, computing only the cells within `limit` of the diagonal (no
    other cell can hold a distance up to `limit`): O(len(a) × limit), not O(len(a) × len(b))."""
    over = limit + 1
    width = len(b) + 1
    before: list[int] = []
    previous = [j if j <= limit else over for j in range(width)]
    for i in range(1, len(a) + 1):
        row = [over] * width
        if i <= limit:
            row[0] = i
        low, high = max(1, i - limit), min(len(b), i + limit)
        for j in range(low, high + 1):
            value = min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] != b[j - 1]))
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                value = min(value, before[j - 2] + 1)
            row[j] = min(value, over)
        if min(row[low - 1 : high + 1]) > limit:
            return over
        before, previous = previous, row
    return previous[-1]
