"""Reading documents as customers have them: extraction speed and memory per format, and
the share of a training that extracting takes, without and with the extraction cache.

1. Per format (text, PDF, DOCX, HTML, e-mail): the same BBC articles written in that format
   by its own library (fpdf2, python-docx, an HTML page, the standard library's `email`),
   extracted by documents/extract.py in a process of its own: documents/s and peak RSS, and
   each as a ratio against plain text measured in the same run.
2. A 1,000-document mixed dataset (5 BBC labels x 200, a fifth of each label in each
   format) trained twice by the job (`auto` unless job arguments follow `--`), as
   bench/scale.py runs it (its own process, phases metered), with the extraction cache on a
   real S3 endpoint (`rclone serve s3`, as `make up` runs it): the `reading` phase against
   the whole job, cold and then warm. Targets: <= 20 % cold, <= 2 % warm.

    python bench/extract.py [--per-format 200] [--documents 1000] [--keep DIR] [-- --mode tfidf]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from email.message import EmailMessage
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# bench.corpora and bench.scale are imported where used: the extracting child process holds
# only the standard library and the extractors, so its peak RSS is theirs.
if TYPE_CHECKING:
    from bench.corpora import Pair

FORMATS = ("text", "pdf", "docx", "html", "email")
SUFFIX = {"text": "txt", "pdf": "pdf", "docx": "docx", "html": "html", "email": "eml"}


def _pdf(text: str) -> bytes:
    from fpdf import FPDF

    pdf = FPDF()
    pdf.set_font("helvetica", size=11)
    pdf.add_page()
    pdf.multi_cell(0, 6, text.encode("latin-1", "replace").decode("latin-1"))
    return bytes(pdf.output())


def _docx(text: str) -> bytes:
    import io

    import docx

    document = docx.Document()
    for paragraph in text.split("\n"):
        document.add_paragraph(paragraph)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def _html(text: str) -> bytes:
    title, _, body = text.partition("\n")
    paragraphs = "".join(f"<p>{escape(p)}</p>" for p in body.split("\n") if p.strip())
    return (
        f"<!DOCTYPE html><html><head><title>{escape(title)}</title><script>var t = 1;</script>"
        f"</head><body><nav><a href='/'>Home</a> | <a href='/news'>News</a></nav><article>"
        f"<h1>{escape(title)}</h1>{paragraphs}</article><footer>(c) the site</footer></body></html>"
    ).encode()


def _email(text: str) -> bytes:
    message = EmailMessage()
    message["From"] = "reader@example.com"
    message["To"] = "desk@example.com"
    message["Subject"] = text.partition("\n")[0][:80]
    message.set_content(text)
    return message.as_bytes()


WRITERS: dict[str, Callable[[str], bytes]] = {
    "text": lambda text: text.encode(),
    "pdf": _pdf,
    "docx": _docx,
    "html": _html,
    "email": _email,
}


def write_formats(texts: list[str], folder: Path) -> None:
    for kind in FORMATS:
        target = folder / kind
        target.mkdir(parents=True, exist_ok=True)
        for i, text in enumerate(texts):
            (target / f"{i:05d}.{SUFFIX[kind]}").write_bytes(WRITERS[kind](text))


def _high_water_mark() -> int:
    """This process's peak RSS since its exec (ru_maxrss would include its parent's, which
    Linux keeps across fork and exec)."""
    status = Path("/proc/self/status").read_text()
    return (
        int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1])
        * 1024
    )


def extract_folder(folder: Path) -> dict[str, Any]:
    """In a process of its own: every file extracted; documents/s and peak RSS."""
    from documents.extract import Extracted, extract

    with open("/proc/self/statm") as statm:
        before = int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    files = sorted(folder.iterdir())
    raws = [path.read_bytes() for path in files]
    extract(raws[0])  # the extractor's import is not the documents' cost
    began = time.perf_counter()
    outcomes = [extract(raw) for raw in raws]
    seconds = time.perf_counter() - began
    failed = [str(o) for o in outcomes if not isinstance(o, Extracted)]
    return {
        "documents": len(raws),
        "seconds": seconds,
        "per_second": len(raws) / seconds,
        "peak_rss": (peak := _high_water_mark()),
        "rss_growth": peak - before,  # the documents, the extractor's import and its work
        "bytes": sum(map(len, raws)),
        "chars": sum(len(o.text) for o in outcomes if isinstance(o, Extracted)),
        "failed": failed[:3],
    }


def per_format(base: Path, texts: list[str]) -> dict[str, dict[str, Any]]:
    write_formats(texts, base / "formats")
    found: dict[str, dict[str, Any]] = {}
    for kind in FORMATS:
        out = base / f"extract-{kind}.json"
        subprocess.run([sys.executable, __file__, "--extract", str(base / "formats" / kind),
                        "--out", str(out)], check=True)  # fmt: skip
        found[kind] = json.loads(out.read_text())
    text = found["text"]
    print("\n## Extraction per format (one process each, after the extractor's import)")
    print("| format | documents | KiB a document | documents/s | peak RSS MiB | RSS growth MiB "
          "| documents/s ratio to text |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|")
    for kind, row in found.items():
        print(f"| {kind} | {row['documents']} | {row['bytes'] / row['documents'] / 1024:.1f} | "
              f"{row['per_second']:,.0f} | {row['peak_rss'] / 2**20:,.0f} | "
              f"{row['rss_growth'] / 2**20:,.1f} | "
              f"{row['per_second'] / text['per_second']:.4f} |")  # fmt: skip
        if row["failed"]:
            print(f"  {kind} could not read: {row['failed']}")
    for kind, row in found.items():
        if kind != "text":
            speed = row["per_second"] / text["per_second"]
            print(f"extract documents/s ratio {kind}/text {speed:.4f}")
            print(f"extract peak RSS growth ratio {kind}/text "
                  f"{row['rss_growth'] / max(text['rss_growth'], 1):.2f}")  # fmt: skip
    return found


def write_mixed(pairs: list[Pair], total: int, folder: Path) -> dict[str, int]:
    """`total` documents, stratified; the i-th of each label in format i mod 5."""
    from bench.corpora import _stratified

    chosen, _ = _stratified(pairs, total, "extract")
    seen: dict[str, int] = {}
    counts = dict.fromkeys(FORMATS, 0)
    for text, label in chosen:
        index = seen[label] = seen.get(label, -1) + 1
        kind = FORMATS[index % len(FORMATS)]
        counts[kind] += 1
        target = folder / label / f"{index:05d}.{SUFFIX[kind]}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(WRITERS[kind](text))
    return counts


def reading_share(result: dict[str, Any]) -> tuple[float, float]:
    reading = sum(p["seconds"] for p in result["phases"] if p["phase"] == "reading")
    return reading, reading / result["seconds"]


def mixed_training(base: Path, pairs: list[Pair], total: int, job_args: list[str]) -> None:
    from bench.scale import local_s3, train

    root = base / "s3"
    channel = root / "data" / "mixed"
    counts = write_mixed(pairs, total, channel)
    (root / "artifacts").mkdir(parents=True, exist_ok=True)
    args = [*job_args, "--extraction_cache_uri", "s3://artifacts/extracted"]
    rows = []
    with local_s3(root) as endpoint:
        os.environ.update(AWS_ENDPOINT_URL_S3=endpoint, AWS_DEFAULT_REGION="us-east-1")
        for attempt in ("cold cache", "warm cache"):
            work = base / f"job-{attempt.split()[0]}"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            result = train(channel, work, args)
            rows.append((attempt, result))
    mix = ", ".join(f"{n} {kind}" for kind, n in counts.items())
    print(f"\n## Training on {total:,} BBC documents ({mix}), extraction cache on S3")
    print("| run | kept | whole job s | reading s | reading share | target |")
    print("|---|---|---:|---:|---:|---:|")
    for (attempt, result), target in zip(rows, ("20 %", "2 %"), strict=True):
        reading, share = reading_share(result)
        print(f"| {attempt} | {result['kind']} | {result['seconds']:.1f} | {reading:.2f} | "
              f"{share:.1%} | <= {target} |")  # fmt: skip
    for attempt, result in rows:
        print(f"reading share {attempt.split()[0]} {reading_share(result)[1]:.4f}")
    cold, warm = (reading_share(result)[0] for _, result in rows)
    print(f"reading seconds ratio warm/cold {warm / cold:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--per-format", type=int, default=200)
    parser.add_argument("--documents", type=int, default=1000)
    parser.add_argument("--keep", help="write the documents and results here (kept)")
    parser.add_argument("--no-training", action="store_true")
    parser.add_argument("--extract", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args, rest = parser.parse_known_args()
    job_args = rest[1:] if rest[:1] == ["--"] else rest
    if args.extract:
        Path(args.out).write_text(json.dumps(extract_folder(Path(args.extract))))
        return
    from bench.corpora import load

    pairs = load("bbc").train
    base = Path(args.keep or tempfile.mkdtemp(prefix="extract-"))
    try:
        per_format(base, [text for text, _ in pairs[: args.per_format]])
        if not args.no_training:
            mixed_training(base, pairs, args.documents, job_args)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
