"""The extraction cache (training_job/extraction_cache.py) against moto's S3: a damaged or
unreachable cache is a miss, never a failed document."""

from __future__ import annotations

from pathlib import Path

import boto3
from botocore.config import Config
from moto import mock_aws

from documents.extract import Extracted, Limits
from tests.support import pdf_bytes
from training_job.data import FolderSource, read_dataset
from training_job.extraction_cache import S3TextCache


@mock_aws
def test_outcomes_round_trip_and_the_limits_are_part_of_the_key() -> None:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="art")
    cache = S3TextCache(client, "s3://art/extracted", Limits())
    assert cache.get("ab" * 32) is None
    cache.put("ab" * 32, Extracted("some text", "pdf", "pypdf"))
    cache.put("cd" * 32, "encrypted PDF (needs a password)")
    assert cache.get("ab" * 32) == Extracted("some text", "pdf", "pypdf")
    assert cache.get("cd" * 32) == "encrypted PDF (needs a password)"
    assert (cache.counts.hits, cache.counts.misses) == (2, 1)
    # other limits: another extraction, so another key
    assert S3TextCache(client, "s3://art/extracted", Limits(max_pdf_pages=3)).get("ab" * 32) is None


@mock_aws
def test_a_damaged_entry_or_a_missing_bucket_is_a_miss_and_the_document_is_read(
    tmp_path: Path,
) -> None:
    client = boto3.client("s3", region_name="us-east-1", config=Config(retries={"max_attempts": 1}))
    client.create_bucket(Bucket="art")
    for label, text in (("a", "alpha beta gamma"), ("b", "delta epsilon zeta")):
        (tmp_path / label).mkdir()
        (tmp_path / label / "doc.pdf").write_bytes(pdf_bytes(text))
    damaged = S3TextCache(client, "s3://art/x", Limits())
    first = read_dataset(FolderSource(tmp_path), ["a", "b"], 10**7, cache=damaged)
    for key in [o["Key"] for o in client.list_objects_v2(Bucket="art")["Contents"]]:
        client.put_object(Bucket="art", Key=key, Body=b"{not json")
    again = read_dataset(FolderSource(tmp_path), ["a", "b"], 10**7, cache=damaged)
    nowhere = S3TextCache(client, "s3://no-such-bucket/x", Limits())
    third = read_dataset(FolderSource(tmp_path), ["a", "b"], 10**7, cache=nowhere)
    for dataset in (first, again, third):
        assert sorted(d.text for d in dataset.documents) == [
            "alpha beta gamma",
            "delta epsilon zeta",
        ]
    assert damaged.counts.errors == 2 and nowhere.counts.errors == 4  # 2 gets, 2 puts
