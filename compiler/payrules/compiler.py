"""Rule file → `Policy`: parse, check, generate Python, and compile it into a callable."""

from __future__ import annotations

import hashlib
import linecache
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from payrules import __version__, runtime
from payrules.check import Checked, check
from payrules.codegen import generate
from payrules.diagnostics import CompileError, InputError
from payrules.parser import parse
from payrules.source import Source

Judge = Callable[[runtime.Session, list[runtime.Line]], tuple[list[int], list[list[runtime.Reason]], list[bool]]]


@attrs.frozen
class Policy:
    """One payer's compiled rules. Immutable; safe to share between threads."""

    payer_id: str
    payer_name: str
    source: str
    """The rule file's name as given."""
    rules: tuple[runtime.RuleInfo, ...]
    judge: Judge = attrs.field(repr=False)
    python: str = attrs.field(repr=False)
    """The generated Python source."""
    reason_cache: dict[tuple[int, object], Any] = attrs.field(factory=dict, eq=False, repr=False)
    """Explained reasons by (rule, facts), filled by the runner. Races between threads only
    recompute equal values."""


def check_source(source: Source) -> Checked:
    """Parse and check; raise `CompileError` with every diagnostic when anything is wrong."""
    module, diagnostics = parse(source)
    bindings, check_diagnostics = check(module)
    diagnostics += check_diagnostics
    if diagnostics:
        raise CompileError(diagnostics)
    return Checked(module, bindings)


def emit_python(source: Source) -> str:
    """The Python source payrules generates for a rule file."""
    return generate(check_source(source))


def compile_source(source: Source) -> Policy:
    """Compile rule text into a `Policy`."""
    checked = check_source(source)
    python = generate(checked)
    digest = hashlib.sha256(f"{__version__}\0{source.name}\0{source.text}".encode()).hexdigest()[:12]
    filename = f"<payrules:{source.name}:{digest}>"
    code = compile(python, filename, "exec")
    # Tracebacks through generated code show its source.
    linecache.cache[filename] = (len(python), None, python.splitlines(True), filename)
    namespace: dict[str, Any] = {"__name__": f"payrules_policy_{digest}"}
    exec(code, namespace)  # noqa: S102 - our own generated code; user text is only ever repr()'d in it
    return Policy(payer_id=namespace["PAYER_ID"], payer_name=namespace["PAYER_NAME"],
                  source=namespace["SOURCE"], rules=namespace["RULES"], judge=namespace["judge"], python=python)


def read_source(path: Path, name: str | None = None) -> Source:
    """Read a rule file as UTF-8 text; a missing or binary file is an `InputError`."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: no such rule file") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a folder, not a rule file") from None
    except UnicodeDecodeError as error:
        raise InputError(f"{path}: not UTF-8 text (byte {error.start})") from None
    except OSError as error:
        raise InputError(f"{path}: cannot read ({error.strerror})") from None
    return Source(name if name is not None else str(path), text.replace("\r\n", "\n"))


def compile_file(path: Path) -> Policy:
    return compile_source(read_source(path))
