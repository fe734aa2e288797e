"""The one base class of errors that a stage reports to its user as a single clear message."""

from __future__ import annotations


class DepthsegError(Exception):
    """Bad input or a missing prerequisite; the message names it and says what to do."""
