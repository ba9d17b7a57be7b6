"""Dataset reading, decoding and splitting, through the job's public functions."""

from __future__ import annotations

from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from training_job.data import (
    DatasetError,
    Document,
    FolderSource,
    S3Source,
    check_trainable,
    read_dataset,
)
from training_job.split import stratified_split


def _write(root: Path, relative: str, body: bytes) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)


def test_folder_source_reads_nested_unicode_names_and_lists_unusable(tmp_path: Path) -> None:
    # given
    _write(tmp_path, "pos/a.txt", b"good film")
    _write(tmp_path, "pos/sub/\u00e9t\u00e9.txt", "tr\u00e8s bien".encode())
    _write(tmp_path, "pos/.DS_Store", b"meta")
    _write(tmp_path, "neg/b.txt", b"bad film")
    _write(tmp_path, "neg/big.txt", b"x" * 200)
    _write(tmp_path, "neg/empty.txt", b"")
    _write(tmp_path, "neg/scan.pdf", b"%PDF-1.7\n\x00\x01\x02 a binary stream")
    _write(tmp_path, "other/c.txt", b"not requested")
    # when
    dataset = read_dataset(FolderSource(tmp_path, key_prefix="ds"), ["pos", "neg"], max_bytes=100)
    # then
    assert dataset.counts() == {"pos": 2, "neg": 1}
    reasons = {r.key: r.reason for r in dataset.rejected}
    assert reasons.pop("ds/neg/scan.pdf").startswith("unreadable PDF: ")
    assert reasons == {
        "ds/pos/.DS_Store": "hidden file",
        "ds/neg/big.txt": "larger than 100 bytes",
        "ds/neg/empty.txt": "empty",
    }
    assert "ds/pos/sub/\u00e9t\u00e9.txt" in {d.key for d in dataset.documents}
    report = dataset.report()
    assert report["number_documents_treated"] == 3
    assert report["number_documents_non_treated"] == 4


def test_fingerprint_changes_when_a_document_changes(tmp_path: Path) -> None:
    _write(tmp_path, "a/1.txt", b"one")
    _write(tmp_path, "b/1.txt", b"two")
    first = read_dataset(FolderSource(tmp_path), ["a", "b"], 100).fingerprint()
    assert read_dataset(FolderSource(tmp_path), ["a", "b"], 100).fingerprint() == first
    _write(tmp_path, "b/1.txt", b"three")
    assert read_dataset(FolderSource(tmp_path), ["a", "b"], 100).fingerprint() != first


@mock_aws
def test_s3_source_pages_through_more_than_a_thousand_keys() -> None:
    client = boto3.client("s3", region_name="us-east-1")
    client.create_bucket(Bucket="data")
    for i in range(1005):
        client.put_object(Bucket="data", Key=f"set/pos/{i:04d}.txt", Body=b"text %d" % i)
    client.put_object(Bucket="data", Key="set/neg/", Body=b"")  # a folder marker
    client.put_object(Bucket="data", Key="set/neg/1.txt", Body=b"other")
    source = S3Source.from_uri(client, "s3://data/set/")
    dataset = read_dataset(source, ["pos", "neg"], max_bytes=1000, workers=8)
    assert dataset.counts() == {"pos": 1005, "neg": 1}
    assert dataset.rejected == []


def test_s3_source_rejects_a_non_s3_uri() -> None:
    with pytest.raises(DatasetError, match="s3://bucket/prefix"):
        S3Source.from_uri(None, "/local/path")


def _docs(counts: dict[str, int]) -> list[Document]:
    return [
        Document(f"{label}/{i}", label, f"text {i}", 1, "0", "utf-8")
        for label, n in counts.items()
        for i in range(n)
    ]


def test_split_is_stratified_deterministic_and_keeps_a_test_doc_per_label() -> None:
    docs = _docs({"big": 100, "small": 3, "mid": 10})
    split = stratified_split(docs, 0.15, 0.15, seed=7)
    again = stratified_split(list(reversed(docs)), 0.15, 0.15, seed=7)
    assert [d.key for d in split.test] == [d.key for d in again.test]
    for part in (split.train, split.validation, split.test):
        assert {d.label for d in part} == {"big", "small", "mid"}
    assert sum(split.sizes().values()) == len(docs)
    assert sum(1 for d in split.test if d.label == "big") == 15


def test_check_trainable_names_short_labels() -> None:
    from training_job.data import Dataset

    dataset = Dataset(labels=["a", "b"], documents=_docs({"a": 5, "b": 2}))
    with pytest.raises(DatasetError, match="'b': 2"):
        check_trainable(dataset, 3)
    with pytest.raises(DatasetError, match="two distinct labels"):
        check_trainable(Dataset(labels=["a", "a"]), 3)


def test_a_document_in_several_label_folders_is_one_document_with_those_labels(
    tmp_path: Path,
) -> None:
    # given: the same file under billing/ and bug/, a copy that differs, and one-label files
    _write(tmp_path, "billing/t1.txt", b"charged twice after the app crashed")
    _write(tmp_path, "bug/t1.txt", b"charged twice after the app crashed")
    _write(tmp_path, "billing/t2.txt", b"refund my invoice")
    _write(tmp_path, "bug/t3.txt", b"the app crashes on start")
    _write(tmp_path, "billing/t4.txt", b"one text")
    _write(tmp_path, "bug/t4.txt", b"another text under the same name")
    # when
    dataset = read_dataset(FolderSource(tmp_path, "ds"), ["billing", "bug"], 1000,
                           multi_label=True)  # fmt: skip
    # then
    by_key = {d.key: d for d in dataset.documents}
    assert sorted(by_key) == ["ds/billing/t1.txt", "ds/billing/t2.txt", "ds/bug/t3.txt"]
    assert by_key["ds/billing/t1.txt"].label_set == ("billing", "bug")
    assert by_key["ds/bug/t3.txt"].label_set == ("bug",)
    assert dataset.counts() == {"billing": 2, "bug": 2}
    conflicting = {r.key: r.reason for r in dataset.rejected}
    assert sorted(conflicting) == ["ds/billing/t4.txt", "ds/bug/t4.txt"]
    assert "conflicting copies: 't4.txt' differs" in conflicting["ds/bug/t4.txt"]
    assert '"labels": ["billing", "bug"]' in "\n".join(dataset.manifest_lines())


def test_single_label_refuses_a_document_filed_under_two_labels_but_not_a_shared_name(
    tmp_path: Path,
) -> None:
    # the same name with other content is the usual case (BBC's 001.txt in every folder)
    _write(tmp_path, "a/001.txt", b"one")
    _write(tmp_path, "b/001.txt", b"two")
    assert read_dataset(FolderSource(tmp_path), ["a", "b"], 100).counts() == {"a": 1, "b": 1}
    # the same document in both folders is a multi-label dataset
    _write(tmp_path, "a/002.txt", b"both")
    _write(tmp_path, "b/002.txt", b"both")
    with pytest.raises(DatasetError, match=r"'002.txt' under a, b.*multi_label: true"):
        read_dataset(FolderSource(tmp_path), ["a", "b"], 100)
