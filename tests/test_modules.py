"""`include`, `drop` and `override`: shared sets and rules across files and from stdlib_rules/."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import line, outcomes, run_policy

from payrules.compiler import compile_file, compile_source
from payrules.source import Source
from payrules.diagnostics import CompileError

BASE = """\
payer BASE
set massage = 97124, 97140
massage-only: only massage, 97010
cap: max $45 per session
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_included_rules_and_sets_apply_and_cite_their_own_file(tmp_path: Path) -> None:
    write(tmp_path, "common/base.payer", BASE)
    main = write(tmp_path, "acme.payer", 'payer T\ninclude "common/base"\nmax 2 units of massage per session\n')
    policy = compile_file(main)
    report = run_policy(policy, line("98940"), line("97124", "60.00", units=3))
    # Included rules come first: the $45 cap, then 2 of 3 units.
    assert outcomes(report) == [("98940", "denied", "0.00"), ("97124", "reduced", "30.00")]
    reason = report.sessions[0].lines[0].reasons[0]
    assert (reason.rule, Path(reason.file).name, reason.line) == ("massage-only", "base.payer", 3)
    assert policy.payer_id == "T"


def test_drop_and_override_by_name(tmp_path: Path) -> None:
    write(tmp_path, "base.payer", BASE)
    main = write(tmp_path, "acme.payer",
                 'payer T\ninclude "base.payer"\ndrop massage-only\noverride cap: max $50 per session\n')
    policy = compile_file(main)
    assert [r.name for r in policy.rules] == ["cap"]
    assert policy.rules[0].text == "max $50 per session"
    report = run_policy(policy, line("98940", "60.00"))
    assert outcomes(report) == [("98940", "reduced", "50.00")]


def test_stdlib_include() -> None:
    policy = compile_source(Source("acme.payer", 'payer T\ninclude "stdlib/massage-session-cap-45"\n'))
    assert policy.rules and all(r.file == "stdlib/massage-session-cap-45.payer" for r in policy.rules)


def test_a_file_reached_twice_is_included_once(tmp_path: Path) -> None:
    write(tmp_path, "sets.payer", "set massage = 97124, 97140\n")
    write(tmp_path, "a.payer", 'include "sets"\n')
    write(tmp_path, "b.payer", 'include "sets"\n')
    main = write(tmp_path, "main.payer", 'payer T\ninclude "a"\ninclude "b"\nonly massage\n')
    assert [r.text for r in compile_file(main).rules] == ["only massage"]


@pytest.mark.parametrize(("text", "code"), [
    ('include "nowhere"', "E108"),
    ('include "stdlib/no-such-template"', "E108"),
    ('include "main"', "E109"),
    ("drop nothing", "E110"),
    ("override nothing: only 97140", "E110"),
])
def test_module_errors(tmp_path: Path, text: str, code: str) -> None:
    main = write(tmp_path, "main.payer", f"payer T\n{text}\n")
    with pytest.raises(CompileError) as caught:
        compile_file(main)
    assert [d.code for d in caught.value.diagnostics] == [code]


def test_name_clash_with_an_included_rule_suggests_override(tmp_path: Path) -> None:
    write(tmp_path, "base.payer", BASE)
    main = write(tmp_path, "main.payer", 'payer T\ninclude "base"\ncap: max $50 per session\n')
    with pytest.raises(CompileError) as caught:
        compile_file(main)
    [diagnostic] = caught.value.diagnostics
    assert diagnostic.code == "E103" and diagnostic.help is not None and "override" in diagnostic.help


def test_an_edited_include_is_recompiled(tmp_path: Path) -> None:
    base = write(tmp_path, "base.payer", BASE)
    main = write(tmp_path, "main.payer", 'payer T\ninclude "base"\n')
    assert compile_file(main).rules[1].text == "max $45 per session"
    base.write_text(BASE.replace("$45", "$40"))
    assert compile_file(main).rules[1].text == "max $40 per session"
