"""Patient id + secret key → a keyed hash (HMAC-SHA256) that stands for the id in output.

The same id gives the same mask within a run and across runs with the same key, so masked
outputs can still be joined with each other; without the key a mask cannot be computed or
checked against a guessed id. Standard library only: the command line and the decision
service both use it.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

KEY_ENVIRONMENT = "PAYRULES_MASK_KEY"
"""The environment variable that holds the key when no key file is given."""

MIN_KEY_BYTES = 16
"""A shorter key could be guessed; then every mask could be reversed by trying ids."""

PREFIX = "p_"
"""Marks a masked id, so that nobody mistakes it for a real one."""

HEX_DIGITS = 24
"""96 bits of the HMAC: no two patients of any realistic input share a mask."""

CACHE_SIZE = 100_000


class MaskKeyError(ValueError):
    """The key is missing, unreadable or too short; the message says which and what to do."""


class PatientMask:
    """Masks patient ids with one key: `mask("P-1007")` → `"p_" + 24 hex digits`."""

    def __init__(self, key: bytes) -> None:
        if len(key) < MIN_KEY_BYTES:
            raise MaskKeyError(f"the masking key is {len(key)} byte{'s' if len(key) != 1 else ''} long; "
                               f"use at least {MIN_KEY_BYTES} random bytes (for example "
                               "`openssl rand -hex 32 > mask.key`)")
        self._key = key
        # Exports repeat a patient on many rows; one HMAC per distinct id is enough.
        self._cached: Callable[[str], str] = functools.lru_cache(maxsize=CACHE_SIZE)(self._digest)

    def __call__(self, patient_id: str) -> str:
        """The mask of `patient_id`; an empty id (a missing field) stays empty, as it hides nothing."""
        return self._cached(patient_id) if patient_id else patient_id

    def __repr__(self) -> str:
        return "PatientMask(<key hidden>)"

    def _digest(self, patient_id: str) -> str:
        # surrogatepass: an id read from JSON may hold a lone surrogate; it is still an id to hide.
        data = patient_id.encode("utf-8", "surrogatepass")
        return PREFIX + hmac.new(self._key, data, hashlib.sha256).hexdigest()[:HEX_DIGITS]

    def decision(self, data: dict[str, Any]) -> dict[str, Any]:
        """A copy of a decision in its JSON shape (a report, a session or a line not judged) with
        every patient id masked: `patient_id` keys, and the value of each problem whose field is
        `patient_id`."""
        out = dict(data)
        if isinstance(out.get("patient_id"), str):
            out["patient_id"] = self(out["patient_id"])
        for key in ("sessions", "errors"):
            if isinstance(out.get(key), list):
                out[key] = [self.decision(item) if isinstance(item, dict) else item for item in out[key]]
        if isinstance(out.get("problems"), list):
            out["problems"] = [self._problem(p) for p in out["problems"]]
        return out

    def _problem(self, problem: Any) -> Any:
        if isinstance(problem, dict) and problem.get("field") == "patient_id" and isinstance(problem.get("value"), str):
            return {**problem, "value": self(problem["value"])}
        return problem


def load_key(key_file: Path | None, environ: Mapping[str, str] | None = None) -> bytes:
    """The key from `key_file`, else from $PAYRULES_MASK_KEY (an empty value counts as unset).

    A key file's trailing line break is not part of the key, so `openssl rand -hex 32 > f`
    and an editor that adds a newline give the same key.
    """
    if key_file is not None:
        try:
            key = key_file.read_bytes()
        except OSError as error:
            raise MaskKeyError(f"{key_file}: cannot read the masking key ({error.strerror})") from None
        key = key.rstrip(b"\r\n")
        if not key:
            raise MaskKeyError(f"{key_file}: the masking key file is empty")
        return key
    value = (os.environ if environ is None else environ).get(KEY_ENVIRONMENT, "")
    if not value:
        raise MaskKeyError(f"masking patient ids needs a key: give --mask-key-file FILE or set {KEY_ENVIRONMENT}")
    return value.encode("utf-8", "surrogatepass")
