"""Nothing secret is committed: no cloud keys, private keys, API keys or passwords in URIs
in any tracked file (local-only placeholders for moto and compose are listed below)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from functions.adapters.mlflow_tracking import redact_credentials

ROOT = Path(__file__).resolve().parents[2]
PATTERNS = {
    "AWS access key id": re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b"),
    "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    "service API key": re.compile(r"\bcc_[0-9a-f]{8}_[A-Za-z0-9_-]{43}\b"),
    "AWS secret assigned": re.compile(
        r"(?i)aws_secret_access_key\W{1,4}[\"']?(?!test\b|x\b|testing\b)[A-Za-z0-9/+]{20,}"
    ),
    "password in a URI": re.compile(r"://[^/\s:@\"'$]+:(?!\$\{)[^@\s/\"']+@"),
}
# Credentials of throwaway local containers (compose.yaml), not of any real system, and the
# placeholder in documentation.
ALLOWED = {"postgresql://mlflow:mlflow@postgres", "://user:password@", "://user:***@"}


def _tracked_text_files() -> list[Path]:
    names = subprocess.run(["git", "ls-files"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout.split()  # fmt: skip
    this = Path(__file__).relative_to(ROOT).as_posix()  # its examples are the patterns' tests
    return [ROOT / n for n in names
            if n != this and not n.endswith((".png", ".jpg", ".gz", ".whl"))]  # fmt: skip


def test_no_secrets_in_tracked_files() -> None:
    found = []
    for path in _tracked_text_files():
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for what, pattern in PATTERNS.items():
            for match in pattern.finditer(text):
                line = text[: match.start()].count("\n") + 1
                context = text[match.start() - 20 : match.end() + 20]
                if not any(allowed in context for allowed in ALLOWED):
                    found.append(f"{path.relative_to(ROOT)}:{line}: {what}")
    assert found == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://mlflow:s3cret@db:5432/mlflow", "postgresql://mlflow:***@db:5432/mlflow"),
        ("failed for mysql://u:p%40ss@h/db here", "failed for mysql://u:***@h/db here"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db"),
        ("http://127.0.0.1:5000/api", "http://127.0.0.1:5000/api"),
    ],
)
def test_database_passwords_are_redacted_from_error_messages(text: str, expected: str) -> None:
    assert redact_credentials(text) == expected
