"""Passwords and tokens never reach output, logs, MLflow params or tags.

A URI's password (``postgresql://alice:S3cret@db/optuna``) and the value of a credential
variable (``MLFLOW_TRACKING_PASSWORD``, ``PGPASSWORD``...) are replaced by ``***`` in any text
this project prints or records: ``redact`` is applied to messages, params and tags on their way
out.
"""

from __future__ import annotations

import os
import re
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

MASK = "***"

#: ``scheme://user:password@`` (the password may hold anything but ``@`` and whitespace).
_USERINFO = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)(?P<password>[^@\s]+)@")
#: Query parameters that carry secrets in storage URLs (``?password=...``, ``&token=...``).
_SECRET_QUERY = re.compile(
    r"(?P<head>[?&](?:password|passwd|pwd|token|access_token|secret|sslpassword)=)"
    r"(?P<value>[^&\s]+)",
    re.IGNORECASE,
)
#: Environment variables whose values are credentials: never printed, whatever the text.
SECRET_VARIABLES = (
    "MLFLOW_TRACKING_PASSWORD",
    "MLFLOW_TRACKING_TOKEN",
    "MLFLOW_AUTH_ADMIN_PASSWORD",
    "PGPASSWORD",
    "KAGGLE_KEY",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
)
#: Shorter values would mask ordinary words.
_MIN_SECRET_LENGTH = 4


def _secret_values() -> list[str]:
    values = [os.environ.get(name, "") for name in SECRET_VARIABLES]
    password = urlsplit(os.environ.get("MLFLOW_TRACKING_URI", "")).password or ""
    values += [password, unquote(password)]
    return sorted({v for v in values if len(v) >= _MIN_SECRET_LENGTH}, key=len, reverse=True)


def redact(text: str) -> str:
    """``text`` with every URI password, secret query value and credential variable's value
    replaced by ``***``."""
    text = _USERINFO.sub(lambda m: f"{m['head']}{MASK}@", text)
    text = _SECRET_QUERY.sub(lambda m: f"{m['head']}{MASK}", text)
    for value in _secret_values():
        text = text.replace(value, MASK)
    return text


def redacted_values(mapping: dict[str, Any]) -> dict[str, Any]:
    """``mapping`` with every string value redacted (params and tags for MLflow)."""
    return {
        key: redact(value) if isinstance(value, str) else value for key, value in mapping.items()
    }


def without_credentials(uri: str) -> tuple[str, str | None, str | None]:
    """``(uri without user and password, user, password)``, the last two percent-decoded."""
    parts = urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri, None, None
    host = parts.hostname or ""
    if ":" in host:  # an IPv6 literal
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    user, password = (
        unquote(value) if value else value for value in (parts.username, parts.password)
    )
    return urlunsplit(parts._replace(netloc=netloc)), user, password
