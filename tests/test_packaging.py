"""`pip install .` gives a working payrules: the grammar and stdlib_rules/ ship inside the wheel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from payrules import api

from conftest import ROOT

STDLIB = sorted((ROOT / "stdlib_rules").glob("*.payer"))


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    # Build from a copy so the checkout gains no build/ folder; no network: the backend is installed.
    src = out / "src"
    shutil.copytree(ROOT, src, ignore=shutil.ignore_patterns(".git", ".venv", "__pycache__", "*.egg-info", "build"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", str(out), str(src)], check=True)
    (built,) = out.glob("payrules-*.whl")
    return built


def test_wheel_ships_grammar_and_stdlib(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "payrules/grammar/rules.lark" in names
    assert {f"payrules/stdlib_rules/{p.name}" for p in STDLIB} <= names
    assert "payrules/cli.py" in names
    assert {"payrules/py.typed", "payrules/schemas/report.schema.json"} <= names


def test_installed_wheel_runs_check(wheel: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target",
                    str(target), str(wheel)], check=True)
    work = tmp_path / "work"
    shutil.copytree(ROOT / "examples" / "chiro-clinic", work)
    env = {**os.environ, "PYTHONPATH": str(target)}
    probe = subprocess.run([sys.executable, "-c", "import payrules.parser as p; print(p.__file__); "
                            "print(len(p.grammar_text()))"], cwd=work, env=env, capture_output=True, text=True,
                           check=True)
    assert probe.stdout.startswith(str(target)), "the installed wheel, not the checkout, is imported"
    result = subprocess.run([sys.executable, "-m", "payrules", "check", "sessions.csv", "--rules", "rules.payer"],
                            cwd=work, env=env, capture_output=True, text=True, check=False)
    assert result.returncode == 1, result.stderr
    assert "Session C-1 | patient P-5001" in result.stdout and result.stderr == ""


@pytest.mark.parametrize("path", STDLIB, ids=[p.stem for p in STDLIB])
def test_stdlib_rule_files_compile(path: Path) -> None:
    policy = api.compile_file(path)
    assert policy.rules and policy.payer_id.startswith("TEMPLATE-")
    text = path.read_text()
    assert "# Source:" in text and "# Checked:" in text and "# What it encodes:" in text


def test_package_passes_mypy_strict(tmp_path: Path) -> None:
    """The package ships py.typed; its own code type-checks under `mypy --strict`."""
    result = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--cache-dir", str(tmp_path),
                             str(ROOT / "compiler" / "payrules")], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
