"""A diagnosis code and its date of service → None when the shipped ICD-10-CM code set bills it,
else a finding worded for a biller.

The code set is the CDC release that the optional `simple-icd-10-cm` package ships (the
`icd10` extra). It is imported on the first lookup, not with payrules: loading it parses the
CDC tabular XML, about two seconds. Without it, `available()` is False, every lookup answers
None and callers keep the shape check of `domain.ICD10_RE` only.

Standard library only besides that optional package, so that standalone modules can copy it.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import importlib
import importlib.metadata
import importlib.resources
import importlib.util
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import NamedTuple, Protocol, cast

from payrules.domain import cache_dir
from payrules.runtime import RuleInfo

LIBRARY = "simple_icd_10_cm"
"""Import name of the package that ships the code set."""

KIND = "diagnosis_code_set"
"""The reason kind of a line denied for a diagnosis that the code set does not bill."""

CARC = "16"
"""Claim/service lacks information or has submission/billing error(s); needs a remark code."""

RARC = "M76"
"""Missing/incomplete/invalid diagnosis or condition."""

NOT_A_CODE = "not_a_code"
NOT_BILLABLE = "not_billable"

SHOWN = 3
"""How many billable codes a finding names, at most."""

# The shape of a code: a letter, two letters or digits, then up to four more after an optional
# dot. Wider than the record readers' check: the April 2026 release has category QA0 (genetic
# disorders), the first with a letter in second place.
_SHAPE = re.compile(r"[A-Z][0-9A-Z]{2}(?:\.?[0-9A-Z]{1,4})?")

# Release files are named after the month the release took effect, in English whatever the
# locale (for example `icd10c-tabular-April-1-2026.xml`).
_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
           "October", "November", "December")
_TABULAR_FILE = re.compile(r"^icd10cm?-tabular-([A-Za-z]+)-(?:([0-9]{1,2})-)?([0-9]{4})\.xml$")


class _CodeSet(Protocol):
    """The part of `simple_icd_10_cm` that payrules calls."""

    def is_valid_item(self, code: str) -> bool: ...
    def is_leaf(self, code: str) -> bool: ...
    def is_category_or_subcategory(self, code: str) -> bool: ...
    def get_descendants(self, code: str) -> list[str]: ...
    def get_description(self, code: str) -> str: ...
    def get_all_codes(self, with_dots: bool = True) -> list[str]: ...


class Release(NamedTuple):
    """The ICD-10-CM release the installed package ships."""

    name: str | None
    """`April 2026`, from the name of the CDC file the package loads; None when no file name says."""
    effective: str | None
    """The date the release took effect (YYYY-MM-DD), or None when the file name does not say."""
    through: str | None
    """The last date of service of the release's fiscal year (releases run October 1 to
    September 30; an April update replaces the October release for the rest of the year)."""
    package: str
    """`simple-icd-10-cm 1.5.0`."""

    @property
    def source(self) -> str:
        """Where the code set comes from: `CDC ICD-10-CM April 2026 release (simple-icd-10-cm 1.5.0)`."""
        return f"CDC ICD-10-CM {self.name} release ({self.package})" if self.name else self.package

    @property
    def citation(self) -> str:
        """What a reason cites instead of a rule file: `ICD-10-CM code set, CDC April 2026 release`
        (shown in parentheses after the reason, so it has none of its own)."""
        if self.name is None:
            return f"ICD-10-CM code set, {self.package}"
        return f"ICD-10-CM code set, CDC {self.name} release"


class Finding(NamedTuple):
    """A diagnosis the code set does not bill, and why."""

    code: str
    """The code as the code set writes it, with its dot: `M54.5`."""
    problem: str
    """`NOT_A_CODE` (no such code) or `NOT_BILLABLE` (a category that has codes under it)."""
    under: str | None
    """The category whose billable codes are offered: the code itself when it is a category,
    else the longest existing code it starts with (None when there is none)."""
    billable: tuple[str, ...]
    """Up to `SHOWN` billable codes under `under`, in code set order (for a code that does not
    exist but starts with a billable code, that one code)."""
    total: int
    """How many billable codes there are under `under`."""
    description: str
    """The code set's title of `under` ("" when there is none)."""
    sentence: str
    """What is wrong, for a biller: `M54.5 is a category, not a billable code; bill M54.50, M54.51
    or M54.59.`"""
    note: str
    """A sentence for a date of service outside the period the release covers, else ""."""

    @property
    def message(self) -> str:
        """The sentence and, when there is one, the note on the date of service."""
        return f"{self.sentence} {self.note}" if self.note else self.sentence


# --- the library, loaded once ----------------------------------------------------------------


@functools.cache
def _library() -> _CodeSet | None:
    try:
        # The library reads its data through deprecated importlib.resources calls and warns about
        # defects it skips in the CDC file; neither is the user's to act on, and under
        # `-W error` either warning would stop the import.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module: ModuleType = importlib.import_module(LIBRARY)
    except ImportError:
        return None
    return cast(_CodeSet, module)


def available() -> bool:
    """True when the code set can be checked (the `icd10` extra is installed); loads it."""
    return _library() is not None


def forget() -> None:
    """Drop the loaded library and every cached answer, so that the next lookup imports it
    again (after the extra was installed or removed in a running process)."""
    for cached in (_library, _installed, release, rule_info, billable_codes, _billable, _finding, _line_findings,
                   findings_of):
        cached.cache_clear()


@functools.cache
def _billable() -> frozenset[str]:
    """The billable codes (with their dots), without importing the library when they were
    worked out before: importing it parses 10 MB of XML (about 2 s), while nearly every code on
    a claim is billable and needs no more than this set. The set is kept in payrules' cache
    folder under the library's version and data file names, so an upgraded code set is never
    answered from an old one. Empty when the library is not installed."""
    found = _installed()
    if found is None:
        return frozenset()
    version, names = found
    key = hashlib.sha256("\0".join([version, *names]).encode()).hexdigest()[:24]
    folder = cache_dir()
    stored = folder / f"icd10-billable-{key}.txt" if folder is not None else None
    if stored is not None:
        try:
            return frozenset(stored.read_text(encoding="ascii").split())
        except (OSError, UnicodeDecodeError):
            pass  # not worked out yet, or damaged: from the library, then kept
    codes = billable_codes()
    if stored is not None and codes:
        try:
            stored.parent.mkdir(parents=True, exist_ok=True)
            temporary = stored.with_name(f"{stored.name}.{os.getpid()}.tmp")
            temporary.write_text("\n".join(codes), encoding="ascii")
            os.replace(temporary, stored)
        except OSError:
            pass  # the cache only saves time
    return frozenset(codes)


@functools.cache
def _installed() -> tuple[str, tuple[str, ...]] | None:
    """The library's version and the names of its data files, found without importing it
    (importing parses the code set); None when it is not installed."""
    try:
        spec = importlib.util.find_spec(LIBRARY)
    except (ImportError, ValueError):  # ValueError: the module is marked missing in sys.modules
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    try:
        version = importlib.metadata.version(LIBRARY)
    except importlib.metadata.PackageNotFoundError:
        version = "(version unknown)"
    data = Path(next(iter(spec.submodule_search_locations))) / "data"
    try:
        names = tuple(sorted(entry.name for entry in data.iterdir()))
    except OSError:
        names = ()
    return version, names


@functools.cache
def release() -> Release | None:
    """The shipped release, or None without the library."""
    found = _installed()
    if found is None:
        return None
    version, names = found
    return release_from_files(names, f"simple-icd-10-cm {version}")


def release_from_files(names: Sequence[str], package: str) -> Release:
    """The release named by the package's tabular data file, for example
    `icd10c-tabular-April-1-2026.xml` → April 2026, effective 2026-04-01, through 2026-09-30.

    A file name without a day (`...-April-2026.xml`) or not in this form gives a release whose
    dates are unknown: every date of service is then checked without a note."""
    for name in names:
        found = _TABULAR_FILE.match(name)
        if found is None or found.group(1).capitalize() not in _MONTHS:
            continue
        month = _MONTHS.index(found.group(1).capitalize()) + 1
        year = int(found.group(3))
        label = f"{_MONTHS[month - 1]} {year}"
        if found.group(2) is None:
            return Release(label, None, None, package)
        try:
            effective = datetime.date(year, month, int(found.group(2)))
        except ValueError:
            return Release(label, None, None, package)
        fiscal_year = year + 1 if month >= 10 else year
        return Release(label, effective.isoformat(), f"{fiscal_year}-09-30", package)
    return Release(None, None, None, package)


# --- lookups ---------------------------------------------------------------------------------


def check_diagnosis(code: str, date_of_service: str) -> Finding | None:
    """None when `code` (upper case, with or without its dot) is billable in the shipped code
    set, or when the library is not installed; else the finding. `date_of_service` is
    YYYY-MM-DD: a date outside the release's period is still checked, and the finding says so."""
    return _finding(code, _period(date_of_service))


def line_findings(diagnoses: tuple[str, ...], date_of_service: str) -> tuple[Finding, ...]:
    """The findings for a line's diagnoses, in the line's order; () when all are billable."""
    if not diagnoses:
        return ()
    return _line_findings(diagnoses, _period(date_of_service))


@functools.lru_cache(maxsize=1 << 16)
def findings_of(diagnoses: tuple[str, ...], date_of_service: str) -> tuple[Finding, ...]:
    """`line_findings`, once per diagnoses and date (lines repeat a few of each)."""
    return line_findings(diagnoses, date_of_service)


def explanation(findings: Sequence[Finding]) -> str:
    """The explanation of a line denied for `findings`: their messages, the date note once."""
    body = " ".join(f.sentence for f in findings)
    # Every finding of a line shares its date of service, so the note is the same for all.
    note = next((f.note for f in findings if f.note), "")
    return f"{body} {note}" if note else body


@functools.cache
def rule_info() -> RuleInfo:
    """What a reason of kind `diagnosis_code_set` cites: the code set, not a rule file line
    (line and column 0 mean "no position in a rule file"; position -1, "not in any RULES")."""
    shipped = release()
    cited = shipped.citation if shipped is not None else "ICD-10-CM code set"
    params: tuple[tuple[str, str], ...] = ()
    if shipped is not None:
        params = (("effective", shipped.effective or ""), ("package", shipped.package), ("release", shipped.name or ""),
                  ("through", shipped.through or ""))
    return RuleInfo(position=-1, name=None, kind=KIND, file=cited, line=0, column=0,
                    text="diagnoses must be billable ICD-10-CM codes", severity="deny", carc=CARC, rarc=RARC,
                    params=params, source=shipped.source if shipped is not None else None, outcome="deny")


@functools.cache
def billable_codes() -> tuple[str, ...]:
    """Every billable code of the shipped release with its dot, in code set order (() without
    the library)."""
    library = _library()
    if library is None:
        return ()
    return tuple(code for code in library.get_all_codes() if library.is_category_or_subcategory(code)
                 and library.is_leaf(code))


def _period(date_of_service: str) -> str:
    """`before` or `after` the release's period, or "" when inside it (or its dates are unknown)."""
    shipped = release()
    if shipped is None:
        return ""
    # ISO dates compare as text.
    if shipped.effective is not None and date_of_service < shipped.effective:
        return "before"
    if shipped.through is not None and date_of_service > shipped.through:
        return "after"
    return ""


# Claims repeat a few diagnoses and diagnosis lists, so each is looked up once; the bound keeps
# memory flat when an input carries millions of distinct made-up codes.
@functools.lru_cache(maxsize=1 << 16)
def _line_findings(diagnoses: tuple[str, ...], period: str) -> tuple[Finding, ...]:
    return tuple(found for found in (_finding(code, period) for code in diagnoses) if found is not None)


@functools.lru_cache(maxsize=1 << 16)
def _finding(code: str, period: str) -> Finding | None:
    wanted = code.strip().upper()
    if _SHAPE.fullmatch(wanted) and _dotted(wanted) in _billable():
        return None
    library = _library()
    if library is None:
        return None
    if not _SHAPE.fullmatch(wanted):
        # Not even shaped like a code (the record readers reject these before judging).
        return _worded(library, wanted, NOT_A_CODE, None, (), period)
    dotted = _dotted(wanted)
    if library.is_valid_item(dotted) and library.is_category_or_subcategory(dotted):
        if library.is_leaf(dotted):
            return None
        return _worded(library, dotted, NOT_BILLABLE, dotted, _leaves(library, dotted), period)
    under = _nearest(library, dotted)
    if under is None:
        return _worded(library, dotted, NOT_A_CODE, None, (), period)
    leaves = (under,) if library.is_leaf(under) else _leaves(library, under)
    return _worded(library, dotted, NOT_A_CODE, under, leaves, period)


def _dotted(code: str) -> str:
    return f"{code[:3]}.{code[3:]}" if len(code) > 3 and "." not in code else code


def _leaves(library: _CodeSet, code: str) -> tuple[str, ...]:
    return tuple(d for d in library.get_descendants(code) if library.is_leaf(d))


def _nearest(library: _CodeSet, dotted: str) -> str | None:
    """The longest existing code that `dotted` (a well-shaped code) starts with."""
    plain = dotted.replace(".", "")
    for end in range(len(plain) - 1, 2, -1):
        candidate = _dotted(plain[:end])
        if library.is_valid_item(candidate) and library.is_category_or_subcategory(candidate):
            return candidate
    return None


def _worded(library: _CodeSet, code: str, problem: str, under: str | None, leaves: tuple[str, ...],
            period: str) -> Finding:
    shown = leaves[:SHOWN]
    description = library.get_description(under) if under is not None else ""
    if problem == NOT_BILLABLE:
        message = f"{code} is a category, not a billable code; {_bill(shown, len(leaves))}."
    elif not code:
        message = "An empty diagnosis is not an ICD-10-CM code."
    elif not _SHAPE.fullmatch(code):
        message = f"`{code}` is not an ICD-10-CM code."
    elif under is None:
        message = f"{code} is not an ICD-10-CM code."
    elif leaves == (under,):
        message = f"{code} is not an ICD-10-CM code; the nearest code is {under} ({description})."
    else:
        message = f"{code} is not an ICD-10-CM code; under {under} ({description}) {_bill(shown, len(leaves))}."
    return Finding(code=code, problem=problem, under=under, billable=shown, total=len(leaves),
                   description=description, sentence=message, note=_note(period))


def _bill(shown: tuple[str, ...], total: int) -> str:
    listed = shown[0] if len(shown) == 1 else f"{', '.join(shown[:-1])} or {shown[-1]}"
    if total > len(shown):
        return f"bill one of its {total} codes, such as {listed}"
    return f"bill {listed}"


def _note(period: str) -> str:
    shipped = release()
    if not period or shipped is None:
        return ""
    if period == "before":
        return (f"(Checked against the {shipped.name} release, which took effect on {shipped.effective}, "
                f"after this date of service.)")
    return (f"(Checked against the {shipped.name} release, which covers dates of service through "
            f"{shipped.through}; the release for this date may differ.)")
