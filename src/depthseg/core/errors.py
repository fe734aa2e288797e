"""The one base class of errors that a stage reports to its user as a single clear message."""

from __future__ import annotations


class DepthsegError(Exception):
    """Bad input or a missing prerequisite; the message names it and says what to do."""


def first_line(error: BaseException) -> str:
    """An error's message up to its first line break: database drivers and SQLAlchemy add hints
    and links on further lines, and a stage reports in one line."""
    lines = str(error).strip().splitlines()
    return lines[0] if lines else type(error).__name__
