"""Diagnoses against the shipped ICD-10-CM code set: billable codes pass, codes that do not exist
and category headers get a worded finding, and without the library every lookup passes."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from payrules import icd10

IN_RELEASE = "2026-05-04"
BEFORE_RELEASE = "2025-11-03"
AFTER_RELEASE = "2026-10-05"

# Billable codes a massage, manual therapy or chiropractic office bills (April 2026 release).
BILLABLE = [
    "M54.50", "M54.51", "M54.59", "M54.40", "M54.41", "M54.42", "M54.30", "M54.2", "M54.6", "M54.9",
    "M54.12", "M54.16", "M54.17", "M47.812", "M62.830", "M62.831", "M62.838", "M62.81", "M62.89",
    "M79.10", "M79.11", "M79.12", "M79.18", "M79.7", "S13.4XXA", "S13.4XXD", "S16.1XXA", "S23.3XXA",
    "S33.5XXA", "S39.012A", "M99.00", "M99.01", "M99.02", "M99.03", "M99.04", "M99.05", "G44.209",
    "M25.511", "G89.29", "R52",
    # A letter in second place: category QA0 of the April 2026 release.
    "QA0.0101", "QA0.8",
]

# What a biller reads for each code that the code set does not bill.
NOT_BILLED = ["M54.99", "Z99.ZZZZ", "M54.5", "M545", "M62.83", "M79.1", "M54", "S13.4", "S13.4XX", "U99.9"]


@pytest.fixture(autouse=True)
def _fresh_code_set() -> Iterator[None]:
    """Every test starts and ends with nothing cached, so a simulated missing library never leaks."""
    icd10.forget()
    yield
    icd10.forget()


def _without_dot(code: str) -> str:
    return code.replace(".", "")


# --- the shipped release ------------------------------------------------------------------------


def test_release_is_named_after_the_cdc_file_the_package_loads() -> None:
    shipped = icd10.release()
    assert shipped is not None
    assert (shipped.name, shipped.effective, shipped.through) == ("April 2026", "2026-04-01", "2026-09-30")
    assert shipped.citation == "ICD-10-CM code set, CDC April 2026 release"
    assert shipped.package.startswith("simple-icd-10-cm ")
    assert shipped.source == f"CDC ICD-10-CM April 2026 release ({shipped.package})"


@pytest.mark.parametrize(("names", "expected"), [
    (["__init__.py", "code-list-April-2026.txt", "icd10c-tabular-April-1-2026.xml"],
     ("April 2026", "2026-04-01", "2026-09-30")),
    # An October release opens the next fiscal year.
    (["icd10cm-tabular-October-1-2026.xml"], ("October 2026", "2026-10-01", "2027-09-30")),
    # A file name without a day names the release but not the date it took effect.
    (["icd10cm-tabular-April-2025.xml"], ("April 2025", None, None)),
    (["icd10c-tabular-Avril-1-2026.xml"], (None, None, None)),
    (["icd10c-tabular-February-30-2026.xml"], ("February 2026", None, None)),
    ([], (None, None, None)),
])
def test_release_from_file_names(names: list[str], expected: tuple[str | None, ...]) -> None:
    found = icd10.release_from_files(names, "simple-icd-10-cm 9.9")
    assert (found.name, found.effective, found.through) == expected


def test_a_release_without_a_name_is_cited_by_its_package() -> None:
    found = icd10.release_from_files([], "simple-icd-10-cm 9.9")
    assert found.citation == "ICD-10-CM code set, simple-icd-10-cm 9.9"
    assert found.source == "simple-icd-10-cm 9.9"


# --- billable codes pass ------------------------------------------------------------------------


@pytest.mark.parametrize("code", BILLABLE)
@pytest.mark.parametrize("date", [IN_RELEASE, BEFORE_RELEASE, AFTER_RELEASE])
def test_billable_codes_pass_with_and_without_the_dot(code: str, date: str) -> None:
    assert icd10.check_diagnosis(code, date) is None
    assert icd10.check_diagnosis(_without_dot(code), date) is None


def test_every_billable_code_of_the_release_passes() -> None:
    codes = icd10.billable_codes()
    # The April 2026 release has about 74,700 billable codes; a broken load would give far fewer.
    assert len(codes) > 70_000
    failing = [c for c in codes if icd10.check_diagnosis(c, IN_RELEASE) or icd10.check_diagnosis(_without_dot(c), IN_RELEASE)]
    assert failing == []


def test_every_category_names_billable_codes_under_it() -> None:
    library = icd10._library()
    assert library is not None
    headers = [c for c in library.get_all_codes() if library.is_category_or_subcategory(c) and not library.is_leaf(c)]
    assert len(headers) > 10_000
    for code in headers:
        found = icd10.check_diagnosis(code, IN_RELEASE)
        assert found is not None and found.problem == icd10.NOT_BILLABLE, code
        leaves = [d for d in library.get_descendants(code) if library.is_leaf(d)]
        assert found.total == len(leaves) > 0
        assert list(found.billable) == leaves[:icd10.SHOWN]
        assert all(icd10.check_diagnosis(b, IN_RELEASE) is None for b in found.billable)


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_sampled_billable_codes_pass_on_any_date(data: st.DataObject) -> None:
    codes = icd10.billable_codes()
    code = codes[data.draw(st.integers(0, len(codes) - 1))]
    date = data.draw(st.dates()).isoformat()
    spelling = data.draw(st.sampled_from([code, _without_dot(code)]))
    assert icd10.check_diagnosis(spelling, date) is None


# --- what does not pass, worded for a biller ----------------------------------------------------


def test_findings_for_codes_the_code_set_does_not_bill(text_snapshot: object) -> None:
    out = []
    for code in NOT_BILLED:
        found = icd10.check_diagnosis(code, IN_RELEASE)
        assert found is not None
        out.append(f"{code}\n  {found.problem}: {found.message}")
    assert text_snapshot(name="findings") == "\n".join(out) + "\n"  # type: ignore[operator]


def test_findings_are_structured() -> None:
    header = icd10.check_diagnosis("M545", IN_RELEASE)
    assert header == icd10.Finding(code="M54.5", problem=icd10.NOT_BILLABLE, under="M54.5",
                                   billable=("M54.50", "M54.51", "M54.59"), total=3, description="Low back pain",
                                   sentence="M54.5 is a category, not a billable code; bill M54.50, M54.51 or M54.59.",
                                   note="")
    missing = icd10.check_diagnosis("M54.99", IN_RELEASE)
    assert missing is not None
    assert (missing.code, missing.problem, missing.under, missing.billable, missing.total) == (
        "M54.99", icd10.NOT_A_CODE, "M54.9", ("M54.9",), 1)
    nowhere = icd10.check_diagnosis("U99.9", IN_RELEASE)
    assert nowhere is not None
    assert (nowhere.under, nowhere.billable, nowhere.total, nowhere.description) == (None, (), 0, "")


def test_a_category_with_more_than_three_codes_says_how_many() -> None:
    found = icd10.check_diagnosis("M79.1", IN_RELEASE)
    assert found is not None
    assert found.total == 4 and found.billable == ("M79.10", "M79.11", "M79.12")
    assert "one of its 4 codes, such as M79.10, M79.11 or M79.12" in found.sentence


def test_dates_outside_the_release_are_checked_and_say_so(text_snapshot: object) -> None:
    out = []
    for date in (BEFORE_RELEASE, "2026-03-31", "2026-04-01", "2026-09-30", AFTER_RELEASE):
        found = icd10.check_diagnosis("M54.5", date)
        assert found is not None and found.problem == icd10.NOT_BILLABLE
        out.append(f"{date}: {found.message}")
    assert text_snapshot(name="dates") == "\n".join(out) + "\n"  # type: ignore[operator]


def test_lines_report_their_findings_in_diagnosis_order() -> None:
    found = icd10.line_findings(("M54.2", "M62.83", "M54.99", "M54.50"), IN_RELEASE)
    assert [f.code for f in found] == ["M62.83", "M54.99"]
    assert icd10.line_findings(("M54.2", "S134XXA"), IN_RELEASE) == ()
    assert icd10.line_findings((), IN_RELEASE) == ()


def test_the_reason_a_judged_line_would_carry(text_snapshot: object) -> None:
    rule = icd10.rule_info()
    lines = [f"{field}: {value!r}" for field, value in rule._asdict().items()]
    for diagnoses, date in ((("M54.5",), IN_RELEASE), (("M54.5", "M54.2", "Z99.ZZZZ"), IN_RELEASE),
                            (("M62.83", "M79.1"), BEFORE_RELEASE)):
        findings = icd10.line_findings(diagnoses, date)
        lines.append(f"\n{', '.join(diagnoses)} on {date}:\n  {icd10.explanation(findings)}")
    assert text_snapshot(name="reason") == "\n".join(lines) + "\n"  # type: ignore[operator]


def test_lookups_are_cached() -> None:
    assert icd10.check_diagnosis("M54.5", IN_RELEASE) is icd10.check_diagnosis("M54.5", IN_RELEASE)
    first = icd10.line_findings(("M54.5", "M54.2"), IN_RELEASE)
    looked_up = icd10._finding.cache_info()
    for _ in range(1000):
        assert icd10.line_findings(("M54.5", "M54.2"), IN_RELEASE) is first
    # Repeated lines reuse the line's answer and never look a code up again.
    assert icd10._finding.cache_info() == looked_up
    assert icd10._line_findings.cache_info().hits == 1000


# --- no input crashes a lookup ----------------------------------------------------------------


@settings(max_examples=500, deadline=None)
@given(st.text(max_size=20), st.text(max_size=12))
def test_any_text_gets_an_answer(code: str, date: str) -> None:
    found = icd10.check_diagnosis(code, date)
    assert found is None or (found.problem in (icd10.NOT_A_CODE, icd10.NOT_BILLABLE) and found.message)


@settings(max_examples=500, deadline=None)
@given(st.from_regex(r"\A[A-Z][0-9A-Z]{2}(\.?[0-9A-Z]{1,4})?\Z"), st.dates())
def test_any_code_shaped_text_gets_a_worded_answer(code: str, date: object) -> None:
    found = icd10.check_diagnosis(code, str(date))
    if found is not None:
        assert found.sentence.startswith(found.code) and found.sentence.endswith(".")
        assert found.code.replace(".", "") == code.replace(".", "")
        assert all(icd10.check_diagnosis(b, str(date)) is None for b in found.billable)


@pytest.mark.parametrize(("code", "sentence"), [
    ("", "An empty diagnosis is not an ICD-10-CM code."),
    ("A00-A09", "`A00-A09` is not an ICD-10-CM code."),
    ("1", "`1` is not an ICD-10-CM code."),
    ("M54.5.0", "`M54.5.0` is not an ICD-10-CM code."),
    (" m54.5 ", "M54.5 is a category, not a billable code; bill M54.50, M54.51 or M54.59."),
])
def test_text_that_is_not_shaped_like_a_code(code: str, sentence: str) -> None:
    # Chapter numbers and block ranges are items of the library's tree but never diagnoses.
    found = icd10.check_diagnosis(code, IN_RELEASE)
    assert found is not None and found.sentence == sentence


# --- without the library ------------------------------------------------------------------------


def test_without_the_library_every_lookup_passes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "simple_icd_10_cm", None)  # makes the import fail
    icd10.forget()
    assert icd10.available() is False
    assert icd10.release() is None
    assert icd10.check_diagnosis("M54.99", IN_RELEASE) is None
    assert icd10.check_diagnosis("M54.5", IN_RELEASE) is None
    assert icd10.line_findings(("M54.5", "Z99.ZZZZ"), IN_RELEASE) == ()
    assert icd10.billable_codes() == ()
    rule = icd10.rule_info()
    assert (rule.file, rule.source, rule.params, rule.carc, rule.rarc) == ("ICD-10-CM code set", None, (), "16", "M76")


def test_the_library_is_found_again_once_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    with monkeypatch.context() as patched:
        patched.setitem(sys.modules, "simple_icd_10_cm", None)
        icd10.forget()
        assert icd10.check_diagnosis("M54.5", IN_RELEASE) is None
    icd10.forget()
    assert icd10.available() is True
    assert icd10.check_diagnosis("M54.5", IN_RELEASE) is not None
