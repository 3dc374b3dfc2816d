"""lib.data.raw: raw file validation, copying from a source directory, download fallback."""
from __future__ import annotations

import gzip
import io
import os
import urllib.error
import urllib.request

import pytest

from lib.data import raw
from lib.data.raw import RawDataError, check_gzip, ensure_raw, raw_names

PAYLOAD = os.urandom(4096) + b'{"reviewerID": "u", "asin": "a", "unixReviewTime": 1}\n' * 500
NAMES = raw_names("Beauty")


def _valid(path, payload=PAYLOAD):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(payload))
    return path


def _no_download(*args, **kwargs):
    raise AssertionError("must not download")


def test_raw_names():
    assert NAMES == {"reviews": "reviews_Beauty_5.json.gz", "meta": "meta_Beauty.json.gz"}


def test_valid_gzip_passes(tmp_path):
    check_gzip(_valid(tmp_path / "ok.json.gz"))


def _truncated(path):
    data = gzip.compress(PAYLOAD)
    path.write_bytes(data[: len(data) // 2])


def _corrupt(path):
    data = bytearray(gzip.compress(PAYLOAD))
    data[20] ^= 0xFF  # inside the deflate stream: zlib.error, not an OSError
    path.write_bytes(bytes(data))


def _bad_crc(path):
    data = bytearray(gzip.compress(PAYLOAD))
    data[-6] ^= 0xFF  # trailer CRC: BadGzipFile
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: None, "missing"),
        (lambda p: p.write_bytes(b""), "empty"),
        (_truncated, "truncated"),
        (lambda p: p.write_text('{"asin": "X"}\n'), "not gzip"),
        (_corrupt, "corrupt"),
        (_bad_crc, "corrupt"),
    ],
    ids=["missing", "empty", "truncated", "not-gzip", "corrupt-deflate", "bad-crc"],
)
def test_bad_raw_files_raise_with_the_path(tmp_path, make, words):
    path = tmp_path / "reviews_Beauty_5.json.gz"
    make(path)
    with pytest.raises(RawDataError) as e:
        check_gzip(path)
    assert str(path) in str(e.value)
    assert words in str(e.value)


def test_ensure_raw_copies_from_source_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(raw, "_download", _no_download)
    src = tmp_path / "shared"
    for name in NAMES.values():
        _valid(src / name, PAYLOAD + name.encode())
    raw_dir = tmp_path / "data" / "raw"
    paths = ensure_raw(raw_dir, "Beauty", str(src))
    assert paths == {k: raw_dir / n for k, n in NAMES.items()}
    for name in NAMES.values():
        assert (raw_dir / name).read_bytes() == (src / name).read_bytes()
    assert sorted(os.listdir(raw_dir)) == sorted(NAMES.values())  # no temp files left


def test_ensure_raw_names_the_missing_source_file(tmp_path, monkeypatch):
    monkeypatch.setattr(raw, "_download", _no_download)
    src = tmp_path / "shared"
    src.mkdir()
    with pytest.raises(RawDataError) as e:
        ensure_raw(tmp_path / "raw", "Beauty", str(src))
    assert str(src / NAMES["reviews"]) in str(e.value)


def test_existing_valid_files_are_used_as_is(tmp_path, monkeypatch):
    monkeypatch.setattr(raw, "_download", _no_download)
    monkeypatch.setattr(urllib.request, "urlopen", _no_download)
    raw_dir = tmp_path / "raw"
    before = {n: _valid(raw_dir / n, PAYLOAD + n.encode()).read_bytes() for n in NAMES.values()}
    src = tmp_path / "other"  # a source dir does not replace files already there
    for n in NAMES.values():
        _valid(src / n, b"other content")
    paths = ensure_raw(raw_dir, "Beauty", str(src))
    assert {p.name: p.read_bytes() for p in paths.values()} == before


def test_existing_broken_file_is_reported_not_replaced(tmp_path, monkeypatch):
    monkeypatch.setattr(raw, "_download", _no_download)
    raw_dir = tmp_path / "raw"
    _valid(raw_dir / NAMES["reviews"])
    (raw_dir / NAMES["meta"]).write_bytes(b"")
    with pytest.raises(RawDataError) as e:
        ensure_raw(raw_dir, "Beauty")
    assert str(raw_dir / NAMES["meta"]) in str(e.value)


def test_offline_error_says_where_to_put_the_file(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no route to host")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    raw_dir = tmp_path / "data" / "raw"
    with pytest.raises(RawDataError) as e:
        ensure_raw(raw_dir, "Beauty")
    msg = str(e.value)
    assert f"{raw_dir}/" in msg
    assert NAMES["reviews"] in msg
    assert "source_dir" in msg
    assert os.listdir(raw_dir) == []  # nothing half-written


class _FakeResponse(io.BytesIO):
    def __init__(self, data: bytes):
        super().__init__(data)
        self.headers = {"Content-Length": str(len(data))}


def test_download_writes_the_file_when_complete(tmp_path, monkeypatch):
    urls = []

    def fake_urlopen(url, timeout):
        urls.append(url)
        return _FakeResponse(gzip.compress(PAYLOAD))

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    raw_dir = tmp_path / "raw"
    paths = ensure_raw(raw_dir, "Beauty", timeout=1.0)
    assert urls == [f"{raw.BASE_URL}/{n}" for n in NAMES.values()]
    assert gzip.decompress(paths["meta"].read_bytes()) == PAYLOAD
    assert sorted(os.listdir(raw_dir)) == sorted(NAMES.values())


def test_truncated_download_leaves_no_file(tmp_path, monkeypatch):
    data = gzip.compress(PAYLOAD)
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: _FakeResponse(data[: len(data) // 2]))
    raw_dir = tmp_path / "raw"
    with pytest.raises(RawDataError):
        ensure_raw(raw_dir, "Beauty")
    assert os.listdir(raw_dir) == []
