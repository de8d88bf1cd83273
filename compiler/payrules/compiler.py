"""Rule file → `Policy`: parse, check, generate Python, and compile it into a callable."""

from __future__ import annotations

import functools
import hashlib
import linecache
import marshal
import os
import sys
import types
from importlib import resources
from pathlib import Path
from typing import Any

import attrs

from payrules import __version__, ast, runtime
from payrules.check import Checked, check
from payrules.codegen import generate
from payrules.judging import Judge
from payrules.diagnostics import CompileError, Diagnostic, InputError, Severity
from payrules.domain import CACHE_DIR_ENV as CACHE_DIR_ENV, NO_CACHE_ENV as NO_CACHE_ENV, cache_dir
from payrules.modules import link
from payrules.parser import grammar_text, parse
from payrules.source import Source



@attrs.frozen
class Policy:
    """One payer's compiled rules. Immutable; safe to share between threads."""

    payer_id: str
    payer_name: str
    source: str
    """The rule file's name as given."""
    effective_from: str | None
    effective_to: str | None
    """The dates of service the rule file applies to (YYYY-MM-DD); None is an open end."""
    rules: tuple[runtime.RuleInfo, ...]
    judge: Judge = attrs.field(repr=False)
    history: bool
    """True when a rule counts earlier sessions (a limit per day or longer period)."""
    python: str = attrs.field(repr=False)
    fields: tuple[runtime.Field, ...] = ()
    """The fields the rule file declares, and the built-in fields its conditions need."""
    """The generated Python source."""
    reason_cache: dict[tuple[int, int, object], Any] = attrs.field(factory=dict, eq=False, repr=False)
    """Explained reasons by (rule, facts), filled by the runner. Races between threads only
    recompute equal values."""
    reason_keys: dict[int, Any] = attrs.field(factory=dict, eq=False, repr=False)
    """Each rule's `RuleInfo` and explanation key function, by rule index (see
    `explain.explanation_key_of`), filled by the runner as its reasons are cached."""
    rendered: dict[str, dict[object, str]] = attrs.field(factory=dict, eq=False, repr=False)
    """The reasons of a line as a writer renders them, by format and then by the line's reason
    keys (see `runner.reason_key`), filled by the bulk writers."""


@attrs.frozen
class _Linked:
    """A rule file parsed with its includes resolved, before checking."""

    module: ast.Module
    diagnostics: list[Diagnostic]
    read: tuple[Source, ...]
    """The file itself and every file it includes, directly or not, as read."""


def _link(source: Source) -> _Linked:
    module, diagnostics = parse(source)
    module, link_diagnostics, included = link(module)
    return _Linked(module, diagnostics + link_diagnostics, (source, *included))


def _check(linked: _Linked) -> tuple[Checked, list[Diagnostic]]:
    bindings, check_diagnostics = check(linked.module)
    return Checked(linked.module, bindings), linked.diagnostics + check_diagnostics


def _without_errors(checked: Checked, diagnostics: list[Diagnostic]) -> Checked:
    errors = [d for d in diagnostics if d.severity is Severity.ERROR]
    if errors:
        raise CompileError(errors)
    return checked


def diagnose(source: Source) -> tuple[Checked, list[Diagnostic]]:
    """Parse, resolve includes and check: the module and every diagnostic, warnings included."""
    return _check(_link(source))


def check_source(source: Source) -> Checked:
    """Parse and check; raise `CompileError` with every error when anything is wrong
    (warnings do not stop compiling; `payrules lint` shows them)."""
    return _without_errors(*diagnose(source))


def emit_python(source: Source) -> str:
    """The Python source payrules generates for a rule file."""
    return generate(check_source(source))


_compiled: dict[str, Policy] = {}
"""Policies compiled in this process, by cache key."""


@functools.cache
def compiler_fingerprint() -> str:
    """A hash of payrules' own modules and grammar: a changed compiler (a new release, or an
    edited checkout) never reuses rules compiled by the old one."""
    digest = hashlib.sha256(__version__.encode())
    package = resources.files("payrules")
    for entry in sorted(package.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".py"):
            digest.update(entry.name.encode() + b"\0" + entry.read_bytes())
    digest.update(grammar_text().encode())
    return digest.hexdigest()


def cache_key(read: tuple[Source, ...]) -> str:
    """Changes with the text and the name (it appears in explanations) of every file the
    compiler read for a rule file (the file, then its includes as the linker found them),
    with payrules itself and with the Python version (compiled code is version specific)."""
    digest = hashlib.sha256(f"{compiler_fingerprint()}\0{sys.implementation.cache_tag}".encode())
    for part in read:
        for text in (part.name, part.text):
            data = text.encode("utf-8", "surrogatepass")
            # Length-prefixed, so that no choice of names and texts can run two keys together.
            digest.update(len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()


def compile_source(source: Source) -> Policy:
    """Compile rule text into a `Policy`; unchanged text is served from the cache.

    Parsing and linking always run: the cache key is made of the files they actually read, so
    an edited included file is never missed. Checking, code generation and `compile()` are
    what the cache saves.
    """
    linked = _link(source)
    key = cache_key(linked.read)
    policy = _compiled.get(key)
    if policy is None:
        policy = _load_cached(key) or _compile_and_store(source.name, linked, key)
        _compiled[key] = policy
    return policy


def _compile_and_store(name: str, linked: _Linked, key: str) -> Policy:
    python = generate(_without_errors(*_check(linked)))
    code = compile(python, _filename(name, key), "exec")
    directory = cache_dir()
    if directory is not None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
            temporary = directory / f"{key}.{os.getpid()}.tmp"
            temporary.write_bytes(marshal.dumps((python, code)))
            os.replace(temporary, directory / f"{key}.marshal")
        except OSError:
            pass  # the cache only saves time; a read-only or full disk must not stop a check
    return _policy(python, code, key)


def _load_cached(key: str) -> Policy | None:
    directory = cache_dir()
    if directory is None:
        return None
    try:
        python, code = marshal.loads((directory / f"{key}.marshal").read_bytes())
        if not (isinstance(python, str) and isinstance(code, types.CodeType)):
            return None
        return _policy(python, code, key)
    except (OSError, ValueError, EOFError, TypeError, KeyError):
        return None  # missing or damaged: compile afresh


def _filename(name: str, key: str) -> str:
    return f"<payrules:{name}:{key[:12]}>"


def policy_from_python(python: str) -> Policy:
    """A policy rebuilt from the Python payrules generated for it (`Policy.python`), as a worker
    process of a distributed engine receives it: compiled functions do not pickle, text does."""
    key = hashlib.sha256(python.encode("utf-8", "surrogatepass")).hexdigest()
    return _policy(python, compile(python, _filename("generated", key), "exec"), key)


def _policy(python: str, code: types.CodeType, key: str) -> Policy:
    # Tracebacks through generated code show its source.
    linecache.cache[code.co_filename] = (len(python), None, python.splitlines(True), code.co_filename)
    namespace: dict[str, Any] = {"__name__": f"payrules_policy_{key[:12]}"}
    exec(code, namespace)  # noqa: S102 - our own generated code; user text is only ever repr()'d in it
    return Policy(payer_id=namespace["PAYER_ID"], payer_name=namespace["PAYER_NAME"],
                  source=namespace["SOURCE"], effective_from=namespace["EFFECTIVE"][0],
                  effective_to=namespace["EFFECTIVE"][1], rules=namespace["RULES"], judge=namespace["judge"],
                  history=namespace["HISTORY"], python=python, fields=namespace.get("FIELDS", ()))


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
