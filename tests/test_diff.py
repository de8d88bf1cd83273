"""`payrules diff`: two versions of rules judged over the same sessions, every changed line,
the rules that changed it, totals, three output formats and exit codes."""

from __future__ import annotations

import csv
import io
import json
import random
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from syrupy.assertion import SnapshotAssertion

from payrules import diff_render
from payrules.diff import diff, diff_command

ROOT = Path(__file__).resolve().parents[1]
CAP = "examples/session-cap-45"
CHIRO = "examples/chiro-clinic"


def run(args: list[str], tmp_path: Path | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(diff_command, args, prog_name="payrules diff", catch_exceptions=False)
    out, err = result.stdout, result.stderr
    if tmp_path is not None:
        out, err = out.replace(str(tmp_path), "<tmp>"), err.replace(str(tmp_path), "<tmp>")
    return result.exit_code, out, err


def transcript(args: list[str], tmp_path: Path | None = None) -> str:
    code, out, err = run(args, tmp_path)
    shown = " ".join(args).replace(str(tmp_path), "<tmp>") if tmp_path else " ".join(args)
    return f"$ payrules diff {shown}\nexit_code: {code}\n----- stdout -----\n{out}----- stderr -----\n{err}"


def edited(tmp_path: Path, example: str, old: str, new: str, name: str = "rules.payer") -> Path:
    """The example's rule file with `old` replaced by `new`, in a folder of its own."""
    text = (ROOT / example / "rules.payer").read_text(encoding="utf-8")
    assert old in text
    folder = tmp_path / "new"
    folder.mkdir(exist_ok=True)
    path = folder / name
    path.write_text(text.replace(old, new), encoding="utf-8")
    return path


def test_a_lower_cap_reduces_paid_lines_and_totals_the_money(tmp_path: Path,
                                                             text_snapshot: SnapshotAssertion) -> None:
    new = edited(tmp_path, CAP, "max $45 per session", "max $35 per session")
    args = [CAP, str(new), "--sessions", f"{CAP}/sessions.csv"]
    code, out, err = run(args, tmp_path)
    assert (code, err) == (1, "")
    result = diff(CAP, str(new), [Path(f"{CAP}/sessions.csv")])
    kinds = {k.kind: (k.lines, k.difference) for k in result.kinds()}
    assert kinds["paid->reduced"] == (1, -500)  # S-103: $40.00 paid, now capped at $35.00
    assert result.difference == result.allowed_new - result.allowed_old < 0
    # What each rule's change did adds up to the money difference of every changed line.
    assert sum(r.difference for r in result.rules()) == result.difference
    assert sum(p.difference for p in result.payers()) == result.difference
    assert text_snapshot == transcript(args, tmp_path)


def test_a_new_exclusion_denies_paid_lines(tmp_path: Path, text_snapshot: SnapshotAssertion) -> None:
    new = edited(tmp_path, CAP, "session-cap:", "no-manual: not covered 97140\nsession-cap:")
    result = diff(CAP, str(new), [Path(f"{CAP}/sessions.csv")])
    assert {c.new.status for c in result.changes} == {"denied"}
    paid = [c for c in result.changes if c.kind == "paid->denied"]
    assert [(c.session_id, c.code, c.difference) for c in paid] == [("S-103", "97140", -4000)]
    (cause,) = paid[0].causes
    assert (cause.change, cause.rule.text, cause.rule.name) == ("added", "not covered 97140", "no-manual")
    assert cause.rule.location == f"{new}:9" and cause.difference == -4000
    assert text_snapshot == transcript([CAP, str(new), "--sessions", f"{CAP}/sessions.csv"], tmp_path)


def test_a_removed_rule_pays_denied_lines(tmp_path: Path, text_snapshot: SnapshotAssertion) -> None:
    new = edited(tmp_path, CHIRO, "requires DC NPI\n", "")
    result = diff(CHIRO, str(new), [Path(f"{CHIRO}/sessions.csv")])
    assert [(c.session_id, c.kind) for c in result.changes] == [("C-2", "denied->reduced")]
    (cause,) = [c for c in result.changes[0].causes if c.change == "removed"]
    assert (cause.rule.text, cause.rule.location) == ("requires DC NPI", f"{CHIRO}/rules.payer:9")
    assert text_snapshot == transcript([CHIRO, str(new), "--sessions", f"{CHIRO}/sessions.csv"], tmp_path)


def test_identical_rules_exit_0_with_no_changes(tmp_path: Path, text_snapshot: SnapshotAssertion) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(ROOT / CHIRO, copy)
    # A moved rule, a comment and blank lines change no decision.
    text = (copy / "rules.payer").read_text(encoding="utf-8").replace("requires DC NPI\n", "")
    (copy / "rules.payer").write_text(text.replace("only 97140\n", "requires DC NPI\n\n# moved\nonly 97140\n"))
    args = [CHIRO, str(copy), "--sessions", f"{CHIRO}/sessions.csv", "--sessions", f"{CHIRO}/sessions.json"]
    code, out, err = run(args, tmp_path)
    assert (code, err) == (0, "") and "No changes: 14 lines judged alike" in out
    assert text_snapshot == transcript(args, tmp_path)


def test_all_three_formats(tmp_path: Path, text_snapshot: SnapshotAssertion, json_snapshot: SnapshotAssertion,
                           snapshot: SnapshotAssertion) -> None:
    new = edited(tmp_path, CHIRO, "max $45 per session\nno same day as 98940-98943\nrequires DC NPI",
                 "max $40 per session\nno same day as 98940-98943 unless modifier 59\nrequires DC or LMT NPI")
    base = [CHIRO, str(new), "--sessions", f"{CHIRO}/sessions.csv"]
    code, text, _ = run(base, tmp_path)
    assert code == 1
    code, data, _ = run([*base, "--format", "json"], tmp_path)
    parsed = json.loads(data)
    assert code == 1 and list(parsed) == ["old", "new", "sessions", "sample", "summary", "kinds", "payers", "rules",
                                          "changes", "unjudged"]
    assert parsed["summary"]["changed_lines"] == len(parsed["changes"]) > 0
    code, table, _ = run([*base, "--format", "csv", "--output", str(tmp_path / "diff.csv")], tmp_path)
    assert (code, table) == (1, "")
    rows = list(csv.DictReader(io.StringIO((tmp_path / "diff.csv").read_text(encoding="utf-8"))))
    assert [(r["session_id"], r["line"], r["change"]) for r in rows] == \
        [(c["session_id"], str(c["line"]), c["kind"]) for c in parsed["changes"]]
    assert text_snapshot(name="text") == text
    assert json_snapshot(name="json") == data
    csv_text = (tmp_path / "diff.csv").read_text(encoding="utf-8").replace(str(tmp_path), "<tmp>")
    assert text_snapshot(name="csv") == csv_text


def _git(repo: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=Test", "-c", "user.email=test@example.org", "-c", "init.defaultBranch=main",
                    "-c", "commit.gpgsign=false", *args], cwd=repo, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A git repository of payer rules with an include, committed, then edited."""
    if shutil.which("git") is None:
        pytest.fail("git is needed to test git:REV:PATH")
    repo = tmp_path / "repo"
    (repo / "payers" / "shared").mkdir(parents=True)
    (repo / "payers" / "shared" / "caps.payer").write_text("payer SHARED\n\nsession-cap: max $45 per session\n")
    (repo / "payers" / "meridian.payer").write_text(
        'payer MERIDIAN "Meridian Mutual (example)"\n\ninclude "shared/caps"\nonly 97140\nrequires DC NPI\n')
    shutil.copy(ROOT / CHIRO / "sessions.csv", repo / "sample.csv")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-q", "-m", "rules")
    (repo / "payers" / "shared" / "caps.payer").write_text("payer SHARED\n\nsession-cap: max $40 per session\n")
    monkeypatch.chdir(repo)
    return repo


def test_a_git_revision_against_the_working_tree(repo: Path, text_snapshot: SnapshotAssertion) -> None:
    args = ["git:HEAD:payers/meridian.payer", "payers/meridian.payer", "--sessions", "sample.csv"]
    code, out, err = run(args)
    assert (code, err) == (1, "")
    assert "git:HEAD:payers/shared/caps.payer:3" in out and "(payers/shared/caps.payer:3)" in out
    same = run(["git:HEAD:payers/meridian.payer", "git:HEAD:payers/meridian.payer", "--sessions", "sample.csv"])
    assert same[0] == 0
    assert text_snapshot == transcript(args)


def test_git_revisions_from_a_sub_folder(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _git(repo, "commit", "-q", "-am", "lower cap")
    monkeypatch.chdir(repo / "payers")
    code, out, err = run(["git:HEAD~1:.", "git:HEAD:.", "--sessions", "../sample.csv"])
    assert (code, err) == (1, "")
    assert "max $45 per session [session-cap] (git:HEAD~1:shared/caps.payer:3)" in out
    assert "max $40 per session [session-cap] (git:HEAD:shared/caps.payer:3)" in out


def test_bad_paths_and_revisions_are_worded(repo: Path, text_snapshot: SnapshotAssertion) -> None:
    (repo / "broken.payer").write_text("payer BROKEN\nonyl 97140\n")
    _git(repo, "add", "broken.payer")
    _git(repo, "commit", "-q", "-m", "broken")
    runs = [
        ["git:no-such-branch:payers", "payers", "--sessions", "sample.csv"],
        ["git:HEAD:no/such/folder", "payers", "--sessions", "sample.csv"],
        ["git:HEAD", "payers", "--sessions", "sample.csv"],
        ["git:--output=x:payers", "payers", "--sessions", "sample.csv"],
        ["git:HEAD:../outside", "payers", "--sessions", "sample.csv"],
        ["git:HEAD:broken.payer", "payers", "--sessions", "sample.csv"],
        ["no/such/folder", "payers", "--sessions", "sample.csv"],
        ["payers", "payers", "--sessions", "no-such.csv"],
        ["payers", "payers"],
        ["payers", "payers", "--sessions", "sample.csv", "--sample", "0"],
    ]
    output = "\n".join(transcript(args) for args in runs)
    assert all("exit_code: 2" in part for part in output.split("$ payrules")[1:])
    assert "Traceback" not in output
    assert text_snapshot == output


def test_outside_a_repository_git_versions_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    shutil.copy(ROOT / CHIRO / "sessions.csv", tmp_path / "s.csv")
    code, out, err = run(["git:HEAD:payers", str(ROOT / CHIRO), "--sessions", "s.csv"])
    assert (code, out) == (2, "")
    assert err == "error: `git:HEAD:payers`: the current folder is not inside a git repository\n"


def _many_patients(path: Path, patients: int) -> None:
    rng = random.Random(3)
    rows = ["session_id,patient_id,date,payer,provider_npi,provider_credential,code,units,charge"]
    for p in range(patients):
        for visit in range(rng.randint(1, 4)):
            day = f"2024-05-{1 + visit * 7:02d}"
            for code in rng.sample(["97140", "97124", "98940"], rng.randint(1, 2)):
                rows.append(f"S-{p}-{visit},P-{p},{day},MERIDIAN,1328719467,DC,{code},1,{rng.choice([30, 40, 50])}.00")
    path.write_text("\n".join(rows) + "\n")


def test_sample_keeps_whole_patients_and_is_the_same_every_time(tmp_path: Path) -> None:
    sessions = tmp_path / "many.csv"
    _many_patients(sessions, 200)
    new = edited(tmp_path, CHIRO, "max $45 per session", "max $40 per session")
    full = diff(CHIRO, str(new), [sessions])
    first = diff(CHIRO, str(new), [sessions], sample=25, seed="a")
    again = diff(CHIRO, str(new), [sessions], sample=25, seed="a")
    other = diff(CHIRO, str(new), [sessions], sample=25, seed="b")
    assert first == again
    assert first.sample is not None and other.sample is not None
    assert 25 <= first.sample.sessions < 25 + 4  # whole patients: at most one patient's sessions more
    assert first.sample.total_patients == 200
    with sessions.open() as stream:
        assert first.sample.total_sessions == len({row["session_id"] for row in csv.DictReader(stream)})
    picked = {c.patient_id for c in first.changes}
    assert picked != {c.patient_id for c in other.changes}
    # A sampled patient's changes are exactly those of the whole run: same-day rules saw every session.
    whole = [c for c in full.changes if c.patient_id in picked]
    assert [(c.where, c.kind, c.difference) for c in first.changes] == [(c.where, c.kind, c.difference) for c in whole]
    code, out, err = run([CHIRO, str(new), "--sessions", str(sessions), "--sample", "25", "--seed", "a"], tmp_path)
    assert code == 1 and err == ""
    assert f"Sample:    {first.sample.sessions} of " in out and "seed a" in out


def test_user_text_is_escaped_in_text_and_neutralised_in_csv(tmp_path: Path) -> None:
    sessions = tmp_path / "odd.csv"
    sessions.write_text("session_id,patient_id,date,payer,provider_npi,provider_credential,code,units,charge\n"
                        '"=HYPERLINK(""x"")",P-1\x1b[31m,2024-05-06,MERIDIAN,1328719467,DC,97140,2,70.00\n')
    new = edited(tmp_path, CHIRO, "max $45 per session", "max $40 per session")
    code, text, _ = run([CHIRO, str(new), "--sessions", str(sessions)], tmp_path)
    assert code == 1 and "\x1b" not in text and "P-1\\x1b[31m" in text
    code, table, _ = run([CHIRO, str(new), "--sessions", str(sessions), "--format", "csv"], tmp_path)
    (row,) = list(csv.DictReader(io.StringIO(table)))
    assert row["session_id"] == "'=HYPERLINK(\"x\")"
    code, data, _ = run([CHIRO, str(new), "--sessions", str(sessions), "--format", "json"], tmp_path)
    assert json.loads(data)["changes"][0]["patient_id"] == "P-1\x1b[31m"


def test_lines_judged_under_one_version_only_are_listed_apart(tmp_path: Path,
                                                              text_snapshot: SnapshotAssertion) -> None:
    old = tmp_path / "old"
    old.mkdir()
    shutil.copy(ROOT / CHIRO / "rules.payer", old / "meridian.payer")
    shutil.copy(ROOT / "examples/only-97140/rules.payer", old / "evergreen.payer")
    args = [str(old), CHIRO, "--sessions", f"{CHIRO}/sessions.csv", "--sessions", "examples/only-97140/sessions.csv"]
    result = diff(str(old), CHIRO, [Path(args[3]), Path(args[5])])
    assert result.changes == () and len(result.unjudged) == 4
    assert {c.kind for c in result.unjudged} == {"paid->not judged", "denied->not judged"}
    assert text_snapshot == transcript(args, tmp_path)
    assert json.loads(diff_render.json_text(result))["summary"]["judged_once_or_other_error"] == 4
