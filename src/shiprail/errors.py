"""The one exception root and its kinds.

Every failure a user can cause or meet is a ``ShiprailError``; the CLI prints its message as one
sentence and exits with ``exit_code``: 2 for bad input (nothing was changed), 1 for an operation
that was refused or failed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class ShiprailError(Exception):
    """Root of every error shiprail raises on purpose."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadInput(ShiprailError):
    """The user gave something unusable (a file, a flag, an id); nothing was changed."""

    exit_code = 2


@dataclass(frozen=True)
class Problem:
    """One guardrail violation: where it is and what to do about it."""

    file: str
    line: int | None
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line is not None else self.file
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PlanInvalid(BadInput):
    """A policy, service or release file broke one or more guardrails."""

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems = list(problems)
        count = len(self.problems)
        head = str(self.problems[0]) if self.problems else "invalid"
        more = f" (and {count - 1} more)" if count > 1 else ""
        super().__init__(head + more)


class NotFound(BadInput):
    """A release, file or record named by the user does not exist."""


class ConfigError(BadInput):
    """The project (shiprail.yaml, services/) is missing or unusable."""


class PermissionDenied(ShiprailError):
    """The acting principal may not do this."""


class IllegalTransition(ShiprailError):
    """The lifecycle does not allow this action from the release's current state."""


class GateFailed(ShiprailError):
    """A go/no-go gate said no; only an executive override passes it."""

    def __init__(self, message: str, gates: Sequence[str]) -> None:
        super().__init__(message)
        self.gates = list(gates)


class ContractFrozen(ShiprailError):
    """The plan of a release was edited after its contract was frozen."""


class OverrideRefused(ShiprailError):
    """An override was asked for but the rules do not allow it."""


class AuditChainBroken(ShiprailError):
    """``audit verify`` found a row altered, missing, inserted or reordered."""

    def __init__(self, message: str, seq: int) -> None:
        super().__init__(message)
        self.seq = seq


class StoreError(ShiprailError):
    """The database could not be opened or migrated."""


class StoreUnreachable(StoreError):
    """The database server could not be reached (refused, cut, restarting): it may answer later.

    ``why``: the driver's own line, without the database named (as a running controller logs it).
    """

    def __init__(self, message: str, why: str) -> None:
        super().__init__(message)
        self.why = why


class SchemaChanged(StoreError):
    """Another shiprail migrated the database while this process had it open (a running controller)."""


class ProviderFailed(ShiprailError):
    """A metric provider could not answer a query (``plan validate --live``)."""


def not_utf8(exc: UnicodeDecodeError) -> str:
    """``is not UTF-8 text (byte 0xe1 at offset 4)``: where a file stops being text."""
    return f"is not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start})"


def why_unreadable(exc: OSError | UnicodeDecodeError) -> str:
    """Why a text file could not be read, in the user's words rather than Python's: ``is a directory; …``."""
    if isinstance(exc, UnicodeDecodeError):
        return f"{not_utf8(exc)}; save it as UTF-8"
    if isinstance(exc, IsADirectoryError):
        return "is a directory; give a file"
    if isinstance(exc, PermissionError):
        return "cannot be read: permission denied; give the user running shiprail access to it"
    return f"cannot be read: {exc.strerror or exc}"
