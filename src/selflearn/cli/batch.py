"""Batch input for ``selflearn interpret --batch FILE``: one utterance a line, as plain text or as a JSON object.

The whole file is read and checked before anything runs, so a bad line stops the batch with a one-line error
naming it (``FILE:LINE: ...``) instead of leaving half a batch interpreted. Blank lines are skipped.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from selflearn.errors import UsageError, validation_summary
from selflearn.ids import Id


class BatchError(UsageError):
    """A batch line that is neither text nor a valid JSON request."""


class BatchLine(BaseModel):
    """One request of a batch; unset fields fall back to the command's options."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    line: int = Field(ge=1)
    """1-based line number in the input, echoed in the output."""
    text: str = Field(min_length=1, max_length=1000)
    """What the user said (ASR text), 1 to 1000 characters."""
    user: Id | None = None
    """Who speaks (default: --user); an id names folders, so the project's id rule holds."""
    device: Id | None = None
    """Endpoint spoken to (default: --device)."""
    time: datetime | None = None
    """When (default: --time or now); naive times are UTC."""

    @field_validator("text")
    @classmethod
    def _spoken(cls, text: str) -> str:
        if not text.strip():
            raise ValueError("text is blank")
        return text

    @field_validator("time")
    @classmethod
    def _utc(cls, when: datetime | None) -> datetime | None:
        return when.replace(tzinfo=UTC) if when is not None and when.tzinfo is None else when


def parse_lines(lines: Iterable[str], source: str = "batch") -> list[BatchLine]:
    """Every non-blank line as a :class:`BatchLine`: a line starting with ``{`` is a JSON object with ``text``
    and optional ``user``, ``device``, ``time``; any other line is the utterance itself."""
    out = []
    for number, raw in enumerate(lines, start=1):
        stripped = raw.strip()
        if not stripped:
            continue
        try:
            if stripped.startswith("{"):
                fields = json.loads(stripped)
                if not isinstance(fields, dict) or "line" in fields:
                    raise BatchError("expected a JSON object with text and optional user, device, time")
                out.append(BatchLine(line=number, **fields))
            else:
                out.append(BatchLine(line=number, text=stripped))
        except (json.JSONDecodeError, ValidationError, BatchError) as e:
            raise BatchError(f"{source}:{number}: {_one_line(e)}") from e
    return out


def _one_line(error: Exception) -> str:
    if isinstance(error, ValidationError):
        return validation_summary(error)
    if isinstance(error, json.JSONDecodeError):
        return f"not valid JSON ({error.msg})"
    return str(error)
