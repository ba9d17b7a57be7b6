"""Comprehend's CSV training format (documents/labelled_csv.py): rows, their problems by line
number, and files that cannot be read as one."""

from __future__ import annotations

import pytest

from documents import CsvError, label_counts, read_labelled_csv, row_key, row_line, row_text

LABELS = ["billing", "bug", "praise"]
ROWS = (
    b"billing,refund my invoice\n"
    b'bug|billing,"crashed, then charged twice\nand again"\n'  # quoted: a comma, a line break
    b"\n"
    b",no label\n"
    b"bug\n"
    b"praise,great\n"
    b"sales,a label nobody asked for\n"
    b"bug,the app, it crashes\n"  # unquoted commas: the text is joined again
    b"praise|,thanks\n"
    b"bug,\x00\x01\x02\n"
)


def test_multi_label_rows_and_every_unusable_row_by_line() -> None:
    parsed = read_labelled_csv(ROWS, LABELS, "|", multi_label=True)
    assert [(d.line, d.labels, d.text) for d in parsed.documents] == [
        (1, ("billing",), "refund my invoice"),
        (2, ("bug", "billing"), "crashed, then charged twice\nand again"),
        (7, ("praise",), "great"),
        (9, ("bug",), "the app, it crashes"),
        (10, ("praise",), "thanks"),
    ]
    assert [(p.line, p.reason) for p in parsed.problems] == [
        (5, "no label"),
        (6, "a label and a text are needed, separated by a comma"),
        (8, "label 'sales' is not one of the training's labels"),
        (11, "text: binary"),
    ]
    assert parsed.counts(LABELS) == {"billing": 2, "bug": 2, "praise": 2}


def test_single_label_points_a_row_with_several_labels_at_multi_label() -> None:
    parsed = read_labelled_csv(ROWS, LABELS, "|", multi_label=False)
    assert (2, "several labels (bug|billing): train with multi_label") in {
        (p.line, p.reason) for p in parsed.problems
    }
    assert read_labelled_csv(b"bug;billing,text\n", LABELS, ";", True).documents[0].labels == (
        "bug", "billing",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"billing;refund\nbug;crash\n", "no row has a label and a text separated by a comma "
                                         "(the rows look ';'-separated)"),
        (b"billing\trefund\nbug\tcrash\n", "(the rows look tab-separated)"),
        ("billing,caf\u00e9 refund\n".encode("latin-1"), "not UTF-8 (byte 0xe9 on line 1)"),
    ],
)  # fmt: skip
def test_a_file_that_is_not_a_labelled_csv_says_why(raw: bytes, message: str) -> None:
    with pytest.raises(CsvError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_labelled_csv(raw, LABELS, "|", multi_label=False)


def test_a_row_key_finds_its_text_and_labels_are_offered_from_the_rows() -> None:
    key = row_key("ds/train.csv", 2)
    assert key == "ds/train.csv#L2"
    assert row_line("ds/train.csv", key) == 2
    assert row_line("ds/other.csv", key) is None
    assert row_text(ROWS, 2) == "crashed, then charged twice\nand again"
    assert label_counts(ROWS) == {"billing": 2, "bug": 3, "praise": 2, "sales": 1}
