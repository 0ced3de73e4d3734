"""The project's exception types: what the library raises when a person can fix the cause.

The CLI (``selflearn.cli.app.main``) and the service map them, once, to a one-line message with an exit code (2: bad
argument or input, 1: a failure) or an HTTP status, so no caller prints a traceback for a mistake in its input.
Modules raise a subclass with a message that says what was wrong and where, in one line.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from pydantic import ValidationError


class SelflearnError(Exception):
    """A failure with a message meant for the user (exit 1, HTTP 500 unless a subclass says otherwise)."""

    exit_code: ClassVar[int] = 1
    """Process exit status the CLI ends with for this error."""
    http_status: ClassVar[int] = 500
    """HTTP status the service answers this error with."""


class UsageError(SelflearnError, ValueError):
    """A bad argument or bad input: a malformed file, a value out of range, an unknown name (exit 2, HTTP 422).
    Also a ``ValueError``, so callers that guard a parse with ``except ValueError`` keep working."""

    exit_code = 2
    http_status = 422


class NotFound(UsageError):
    """Something named by the caller does not exist: a file, a suite, a home, a user, a version (exit 2, HTTP 404)."""

    http_status = 404


class Conflict(SelflearnError):
    """The operation cannot run now: the store is in use by another process, a publish is refused (exit 1, 409)."""

    http_status = 409


def validation_summary(e: ValidationError) -> str:
    """Pydantic's report in one line: ``field.path: message`` per problem (its own text spans lines and links)."""
    return "; ".join(f"{'.'.join(map(str, x['loc'])) or 'value'}: {x['msg']}" for x in e.errors())
