"""Rule files with effective dates: sessions route by payer and date; overlapping files are an error."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import payrules
from payrules import api, standalone

from conftest import transcript

SESSION = {"session_id": "S", "patient_id": "P", "payer": "ACME", "provider_npi": "1548230675",
           "lines": [{"code": "97124", "charge": "60.00"}]}


@pytest.fixture
def two_years(tmp_path: Path) -> Path:
    (tmp_path / "acme-2024.payer").write_text(
        'payer ACME "Acme (example)" effective from 2024-01-01 to 2024-12-31\nmax $40 per session\n')
    (tmp_path / "acme-2025.payer").write_text(
        'payer ACME "Acme (example)" effective from 2025-01-01\nonly 97140\n')
    return tmp_path


def test_sessions_route_by_date(two_years: Path) -> None:
    rules = payrules.load(two_years)
    report = rules.check([{**SESSION, "session_id": "A", "date": "2024-06-01"},
                          {**SESSION, "session_id": "B", "date": "2025-06-01"},
                          {**SESSION, "session_id": "C", "date": "2023-12-31"}])
    a, b = report.sessions
    assert (a.lines[0].status, a.lines[0].allowed, a.rules_file.endswith("acme-2024.payer")) == ("reduced", 4000, True)
    assert (b.lines[0].status, b.rules_file.endswith("acme-2025.payer")) == ("denied", True)
    (error,) = report.errors
    assert error.message == (
        f"payer: no rules for payer `ACME` on 2023-12-31; its rule files cover 2024-01-01 to 2024-12-31 "
        f"({two_years}/acme-2024.payer); 2025-01-01 to any date ({two_years}/acme-2025.payer)")
    assert rules.policy("acme", "2025-03-01").source.endswith("acme-2025.payer")


def test_overlapping_files_are_an_error(two_years: Path) -> None:
    (two_years / "acme-2025.payer").write_text('payer ACME effective from 2024-12-01\nonly 97140\n')
    code, out, err = transcript(["check", "examples/only-97140/sessions.csv", "--rules", str(two_years)])
    assert (code, out) == (2, "")
    assert ("E107 payer `ACME` already has rules for some of these dates: "
            f"{two_years}/acme-2024.payer (2024-01-01 to 2024-12-31) and this file (2024-12-01 to any date) overlap"
            ) in err


def test_header_dates_are_checked() -> None:
    with pytest.raises(payrules.CompileError) as caught:
        payrules.compile_text("payer X effective from 2024-12-31 to 2024-01-01\nonly 97140\n")
    assert [d.code for d in caught.value.diagnostics] == ["E210"]


def test_standalone_modules_route_by_date_too(two_years: Path, tmp_path: Path) -> None:
    module = tmp_path / "acme_rules.py"
    module.write_text(standalone.build(api.load_policies(two_years)))
    sessions = [{**SESSION, "session_id": s, "date": d} for s, d in
                (("A", "2024-06-01"), ("B", "2025-06-01"), ("C", "2023-12-31"))]
    script = (f"import json, sys; sys.path.insert(0, {str(tmp_path)!r}); import acme_rules; "
              f"print(json.dumps(acme_rules.check(json.loads(sys.stdin.read()))))")
    out = subprocess.run([sys.executable, "-I", "-S", "-c", script], input=json.dumps(sessions), capture_output=True,
                         text=True, check=True).stdout
    assert json.loads(out) == payrules.load(two_years).check(sessions).to_dict()
