"""One error hierarchy for lakeforge.

Every error a user can cause is a ``LakeforgeError``: its message says what
failed, on which named object, and how to fix it. The CLI and the jobs map the
class to an exit code and print one line, never a traceback. Errors that are
worth a retry (a lost commit race, an unreachable server) carry the
``TransientError`` mark; Airflow retries only those.
"""

from __future__ import annotations

from collections.abc import Iterable
from difflib import get_close_matches


def did_you_mean(name: str, options: Iterable[str], limit: int = 3) -> str:
    """Return a ``did you mean …?`` suffix with the nearest options, or ''."""
    matches = get_close_matches(name, list(options), n=limit, cutoff=0.6)
    if not matches:
        return ""
    return " (did you mean " + ", ".join(f"'{m}'" for m in matches) + "?)"


class LakeforgeError(Exception):
    """Root of every error a user can cause; its message is shown as is."""

    exit_code = 3
    transient = False


class TransientError(LakeforgeError):
    """Mark: the same call may succeed if retried (Airflow retries these)."""

    exit_code = 75  # EX_TEMPFAIL
    transient = True


class UsageError(LakeforgeError):
    """A command was called with bad arguments."""

    exit_code = 2


class ConfigError(LakeforgeError):
    """A problem in conf/: names the file, the key path and what is allowed."""

    exit_code = 2

    def __init__(self, message: str, *, file: str | None = None, key: str | None = None) -> None:
        self.file = file
        self.key = key
        self.detail = message
        where = ": ".join(part for part in (file, key) if part)
        super().__init__(f"{where}: {message}" if where else message)


class ConfigErrors(ConfigError):
    """Several config problems found at once (``lakeforge check`` reports all)."""

    def __init__(self, problems: list[ConfigError]) -> None:
        self.problems = problems
        lines = [str(p) for p in problems]
        LakeforgeError.__init__(self, f"{len(problems)} config problem(s):\n" + "\n".join(lines))
        self.file = None
        self.key = None
        self.detail = str(self)


class EnvironmentSetupError(LakeforgeError):
    """The machine lacks something lakeforge needs (Java, a package, a writable path)."""

    exit_code = 4


class TableError(LakeforgeError):
    """A Delta table cannot be read or written as asked."""


class TableNotFoundError(TableError):
    """No table of that name under the lake root."""


class UnsupportedTableFeatureError(TableError):
    """The table uses a Delta reader feature this read path cannot honour."""


class SchemaMismatchError(TableError):
    """The data's schema does not match the table's schema."""


class CommitConflictError(TableError, TransientError):
    """Another writer committed a conflicting change first; retrying is safe."""


class SqlError(LakeforgeError):
    """A `lakeforge sql` statement failed (syntax, unknown table or column)."""


class ReadOnlyViolationError(SqlError):
    """`lakeforge sql` refused a statement that would write or change something."""

    exit_code = 2


class DataValidationError(LakeforgeError):
    """Data failed a declared check in a way that stops the step."""


class FeatureError(LakeforgeError):
    """A feature set cannot be built as declared."""


class ModelGateError(LakeforgeError):
    """A challenger model did not pass the promotion gate."""


class RegistryError(LakeforgeError):
    """A registered model, version or alias asked for does not exist or cannot move as asked."""


class ModelExportError(LakeforgeError):
    """A model version cannot be exported as asked: no converter for it, or the copy disagrees."""


class ReproductionError(LakeforgeError):
    """A retrained model's metrics differ from the recorded ones."""


# Failures of the storage under a write, by errno: what happened, and what to do about it.
_STORAGE_FAILURES = {
    28: ("no space left on the device", "free space there (Spark's scratch space is spark.local.dir, /tmp by default)"),
    122: ("the disk quota is exceeded", "free space or raise the quota"),
    30: ("the file system is read-only", "mount it writable, or write elsewhere"),
    13: ("permission denied", "let this user write there, or write elsewhere"),
    1: ("operation not permitted", "let this user write there, or write elsewhere"),
}
# The same failures as a Java IOException (Spark's executors) or delta-rs says them.
_STORAGE_MARKERS = {
    "No space left on device": 28,
    "Disk quota exceeded": 122,
    "Read-only file system": 30,
    "Permission denied": 13,
    "Operation not permitted": 1,
}


def storage_failure(exc: BaseException) -> tuple[str, str] | None:
    """(what happened, what to do) when ``exc`` or its causes are a full, read-only or forbidden disk.

    Looks at Python ``OSError`` errnos and, for Spark's Java errors and delta-rs's errors, which
    reach Python as text, at the messages the operating system gives for those errnos.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in _STORAGE_FAILURES:
            return _STORAGE_FAILURES[seen.errno]
        text = str(seen)
        for marker, code in _STORAGE_MARKERS.items():
            if marker in text:
                return _STORAGE_FAILURES[code]
        seen = seen.__cause__ or seen.__context__
    return None


EXIT_INTERNAL = 70  # EX_SOFTWARE: a bug in lakeforge
EXIT_INTERRUPTED = 130


def report_error(exc: BaseException, prefix: str = "") -> int:
    """The one error boundary: print ``exc`` for a person on stderr and return its exit code.

    A user error is one line (no traceback); anything else is a bug and prints its traceback.
    """
    import sys
    import traceback

    lead = f"{prefix}: " if prefix else ""
    if isinstance(exc, LakeforgeError):
        kind = "retryable error" if exc.transient else "error"
        print(f"{lead}{kind}: {exc}", file=sys.stderr)
        return exc.exit_code
    if isinstance(exc, OSError) and exc.errno in _STORAGE_FAILURES:  # the machine's fault, not lakeforge's
        what, todo = _STORAGE_FAILURES[exc.errno]
        where = f" '{exc.filename}'" if exc.filename else ""
        print(f"{lead}error: cannot write{where}: {what}; {todo}", file=sys.stderr)
        return EnvironmentSetupError.exit_code
    if isinstance(exc, KeyboardInterrupt):
        print(f"{lead}interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    traceback.print_exception(exc, file=sys.stderr)
    print(f"{lead}internal error: this is a bug in lakeforge, not in your config; please report it.", file=sys.stderr)
    return EXIT_INTERNAL
