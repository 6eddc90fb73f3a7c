"""The serial QR head's line handling: terminators are stripped at the reader, nothing else."""

from __future__ import annotations

import pytest

from edge.devices.serial_qr import LineSplitter, decode_text

TEXT = "MJ1:R70-0935LTK404 DGW"  # a space is a base45 character and must survive


@pytest.mark.parametrize("terminator", [b"\r", b"\n", b"\r\n", b"\r\n\r\n"])
def test_terminator_is_stripped_and_spaces_are_kept(terminator: bytes) -> None:
    lines = LineSplitter().feed(b"  " + TEXT.encode() + b" " + terminator)
    assert [decode_text(line) for line in lines if line is not None] == ["  " + TEXT + " "]


def test_crlf_split_across_reads_gives_one_line() -> None:
    splitter = LineSplitter()
    assert splitter.feed(TEXT.encode() + b"\r") == [TEXT.encode()]
    assert splitter.feed(b"\n") == []


def test_a_carriage_return_inside_a_line_ends_it() -> None:
    assert LineSplitter().feed(b"MJ1:AB\rCD\n") == [b"MJ1:AB", b"CD"]
