"""Schema fuzzing: schemathesis generates requests from the running API's OpenAPI document
(examples, coverage, fuzzing and stateful phases) and checks every answer: no 5xx, every
status documented, every body valid against its schema. `make fuzz` runs it; CI runs it
bounded in time."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import LiveApi

pytestmark = pytest.mark.fuzz
MIN_REQUESTS = 1000


def test_fuzzing_finds_no_server_error_and_no_schema_violation(
    live_api: LiveApi, tmp_path: Path
) -> None:
    schemathesis = Path(sys.executable).parent / "schemathesis"
    examples = os.environ.get("CC_FUZZ_EXAMPLES", "60")
    done = subprocess.run(
        [
            str(schemathesis), "run", f"{live_api.url}/openapi.json",
            "--max-examples", examples, "--seed", "1", "--workers", "2",
            "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                        "response_headers_conformance,response_schema_conformance",
            "--request-timeout", "30", "--max-failures", "20",
            "--report", "junit", "--report-dir", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    output = done.stdout + done.stderr
    generated = re.search(r"(\d+) generated", output)
    assert generated, output[-3000:]
    print(f"schemathesis: {generated.group(0)} test cases, exit {done.returncode}")
    assert int(generated.group(1)) >= MIN_REQUESTS, output[-3000:]
    assert done.returncode == 0, output[-6000:]
