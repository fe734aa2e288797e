"""Passwords in URIs and credential variables are masked in anything printed or recorded."""

from __future__ import annotations

import pytest

from depthseg.core.secrets import redact, redacted_values, without_credentials


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://alice:S3cret@db:5432/optuna", "postgresql://alice:***@db:5432/optuna"),
        ("postgresql+psycopg://u:p%40ss@db/x", "postgresql+psycopg://u:***@db/x"),
        (
            "cannot reach http://bob:pw@host:5000 (refused)",
            "cannot reach http://bob:***@host:5000 (refused)",
        ),
        ("mysql://root:@db/x", "mysql://root:@db/x"),  # no password: nothing to mask
        (
            "postgresql://db/x?user=u&password=S3cret&sslmode=require",
            "postgresql://db/x?user=u&password=***&sslmode=require",
        ),
        ("https://host/api?token=abc123", "https://host/api?token=***"),
        ("sqlite:///optuna.db", "sqlite:///optuna.db"),
        ("a plain message", "a plain message"),
    ],
)
def test_a_password_in_a_uri_is_masked(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_the_values_of_credential_variables_are_masked_wherever_they_appear(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "hunter22")
    monkeypatch.setenv("PGPASSWORD", "pg-secret")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://carol:Ur1Secret@tracking:5000")
    text = "login hunter22 failed; pg-secret rejected; Ur1Secret"
    assert redact(text) == "login *** failed; *** rejected; ***"
    params = {"tune.storage": "postgresql://u:pg-secret@db/x", "train.epochs": 8}
    assert redacted_values(params) == {"tune.storage": "postgresql://u:***@db/x", "train.epochs": 8}


def test_credentials_are_taken_out_of_an_http_uri() -> None:
    assert without_credentials("https://alice:p%40ss@tracking.example.org:8443/path") == (
        "https://tracking.example.org:8443/path",
        "alice",
        "p@ss",
    )
    assert without_credentials("http://[::1]:5000") == ("http://[::1]:5000", None, None)
    assert without_credentials("http://bob:pw@[::1]:5000")[0] == "http://[::1]:5000"
