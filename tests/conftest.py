"""Shared fixtures: snapshot extensions for text and Python, a CLI runner, and paths."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from click.testing import CliRunner
from syrupy.assertion import SnapshotAssertion
from syrupy.extensions.single_file import SingleFileSnapshotExtension, WriteMode

from payrules.cli import cli

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
CASES = Path(__file__).resolve().parent / "cases"


class TextSnapshot(SingleFileSnapshotExtension):
    _write_mode = WriteMode.TEXT
    file_extension = "txt"


class JsonSnapshot(SingleFileSnapshotExtension):
    _write_mode = WriteMode.TEXT
    file_extension = "json"


class PythonSnapshot(SingleFileSnapshotExtension):
    _write_mode = WriteMode.TEXT
    file_extension = "py"


@pytest.fixture
def text_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.with_defaults(extension_class=TextSnapshot)


@pytest.fixture
def json_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.with_defaults(extension_class=JsonSnapshot)


@pytest.fixture
def python_snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    return snapshot.with_defaults(extension_class=PythonSnapshot)


@pytest.fixture(autouse=True, scope="session")
def _private_rule_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Compiled rules are cached in a folder of the test run, never in the user's cache."""
    os.environ["PAYRULES_CACHE_DIR"] = str(tmp_path_factory.mktemp("rule-cache"))


@pytest.fixture(autouse=True)
def _run_from_repo_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """Paths in outputs are relative to the checkout, as a user running from it would see them."""
    monkeypatch.chdir(ROOT)


def transcript(args: list[str]) -> tuple[int, str, str]:
    """Run the CLI in-process; return exit code, stdout and stderr, kept apart."""
    result = CliRunner().invoke(cli, args, prog_name="payrules", catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def render_transcript(args: list[str]) -> str:
    """A ruff-style transcript of one CLI run, for snapshots."""
    code, out, err = transcript(args)
    return (f"$ payrules {' '.join(args)}\nexit_code: {code}\n"
            f"----- stdout -----\n{out}----- stderr -----\n{err}")


def without_origins(data: dict) -> dict:  # type: ignore[type-arg]
    """A JSON report with file names and rows removed, to compare CSV and JSON inputs."""
    text = json.dumps(data)
    text = re.sub(r'"(row|path)": ("[^"]*"|\d+|null)', r'"\1": null', text)
    return json.loads(text)  # type: ignore[no-any-return]


# Hypothesis profiles: `ci` (the default) keeps the whole suite within a few minutes on 2 cores;
# `long` (HYPOTHESIS_PROFILE=long) runs 20 times as many examples, for a fuzzing run before a release.
from hypothesis import HealthCheck, settings  # noqa: E402

# `ci` draws the same examples on every run (derandomize), so a run's result never depends on
# luck; `long` draws new ones each time, to find what `ci` does not.
settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow],
                          derandomize=True, database=None)
settings.register_profile("long", max_examples=800, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
