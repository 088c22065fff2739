"""User texts: line ends normalised (a CRLF copy is the same text, with the same SHA-256),
another encoding read when named (a cp1252 Gutenberg file is refused with the way
through), an unknown encoding refused; shipped texts marked as possibly memorised."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctxscope.core.errors import BadInputError
from ctxscope.core.quality.texts import MEMORISED_NOTE, read_document

TEXT = "“It’s café time,” she said.\nThe clocks were striking thirteen.\n\nA new paragraph.\n"


def test_crlf_and_lone_cr_are_the_same_text(tmp_path: Path) -> None:
    lf, crlf, cr = tmp_path / "lf.txt", tmp_path / "crlf.txt", tmp_path / "cr.txt"
    lf.write_bytes(TEXT.encode("utf-8"))
    crlf.write_bytes(TEXT.replace("\n", "\r\n").encode("utf-8"))
    cr.write_bytes(("\ufeff" + TEXT.replace("\n", "\r")).encode("utf-8"))  # old Mac line ends and a BOM
    docs = [read_document(str(p)) for p in (lf, crlf, cr)]
    assert all(d.text == TEXT and "\r" not in d.text for d in docs)
    assert len({d.sha256 for d in docs}) == 1


def test_another_encoding_when_named(tmp_path: Path) -> None:
    path = tmp_path / "gutenberg-cp1252.txt"
    path.write_bytes(TEXT.replace("\n", "\r\n").encode("cp1252"))
    with pytest.raises(BadInputError, match=r"not UTF-8 text \(byte \d+\); .*--quality-text-encoding cp1252"):
        read_document(str(path))
    doc = read_document(str(path), "cp1252")
    utf8 = tmp_path / "utf8.txt"
    utf8.write_bytes(TEXT.encode("utf-8"))
    assert doc.text == TEXT and doc.sha256 == read_document(str(utf8)).sha256  # the same text, compared equal
    utf16 = tmp_path / "utf16.txt"
    utf16.write_bytes(TEXT.encode("utf-16"))  # NUL bytes of its own: text when the encoding says so
    assert read_document(str(utf16), "utf-16").text == TEXT
    with pytest.raises(BadInputError, match="a binary file"):
        read_document(str(utf16))
    with pytest.raises(BadInputError, match="not an encoding Python knows"):
        read_document(str(path), "klingon-8")


def test_shipped_texts_are_marked_as_possibly_memorised() -> None:
    assert read_document("the-great-gatsby").shipped and "training data" in MEMORISED_NOTE
