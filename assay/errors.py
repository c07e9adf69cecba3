"""One small hierarchy of user-facing errors. The CLI prints them without a traceback."""

from __future__ import annotations


class AssayError(Exception):
    """Something the user can fix: says what was wrong and, with ``hint``, how to fix it."""

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint

    def __str__(self) -> str:
        base = super().__str__()
        return f"{base}\n  hint: {self.hint}" if self.hint else base


class ConfigError(AssayError):
    """A flag or config value is invalid (names the flag)."""


class BadRecordError(AssayError):
    """A corpus record could not be read; names file and line (or row)."""

    def __init__(self, path: str, line: int, reason: str, *, unit: str = "line") -> None:
        where = f"{path}:{line}" if unit == "line" else f"{path}: row {line}"
        super().__init__(
            f"{where}: {reason}",
            hint="fix the record, or pass --on-error quarantine to set it aside and go on",
        )
        self.path = path
        self.line = line
        self.reason = reason
        self.unit = unit


class ManifestMismatchError(AssayError):
    """An output folder or input artifact was produced by something else than asked."""
