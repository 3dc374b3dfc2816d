"""lib.io: writers are atomic; a failure leaves the old file and no temporary files."""
from __future__ import annotations

import json
import os

import numpy as np
import pandas as pd
import pytest

from lib.io import atomic_path, read_json, write_json, write_npy, write_parquet, write_text


def test_writers_round_trip_and_leave_no_temp_files(tmp_path):
    out = tmp_path / "nested" / "dir"  # parents are created
    df = pd.DataFrame({"user": [0, 1], "history": [[1, 2], [3]], "name": ["a", "é"]})
    arr = np.arange(12, dtype=np.float32).reshape(3, 4)
    write_json({"a": 1, "b": [1.5, None]}, out / "m.json")
    write_text("hello\n", out / "t.txt")
    write_parquet(df, out / "d.parquet")
    write_npy(arr, out / "a.npy")
    assert sorted(os.listdir(out)) == ["a.npy", "d.parquet", "m.json", "t.txt"]
    assert read_json(out / "m.json") == {"a": 1, "b": [1.5, None]}
    assert (out / "t.txt").read_text() == "hello\n"
    back = pd.read_parquet(out / "d.parquet")
    assert back["history"].map(list).tolist() == [[1, 2], [3]]
    assert back["name"].tolist() == ["a", "é"]
    np.testing.assert_array_equal(np.load(out / "a.npy"), arr)


def test_overwrite_replaces_content(tmp_path):
    path = tmp_path / "m.json"
    write_json({"v": 1}, path)
    write_json({"v": 2}, path)
    assert json.loads(path.read_text()) == {"v": 2}
    assert os.listdir(tmp_path) == ["m.json"]


def test_exception_inside_atomic_path_keeps_the_old_file(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(path) as tmp:
            assert tmp.parent == path.parent and tmp != path
            tmp.write_text("half-written new")
            raise RuntimeError("boom")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["out.txt"]


def test_failed_write_never_creates_the_destination(tmp_path):
    path = tmp_path / "out.txt"
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(path) as tmp:
            tmp.write_text("partial")
            raise KeyboardInterrupt
    assert os.listdir(tmp_path) == []


def test_failing_serialiser_keeps_the_old_parquet(tmp_path):
    path = tmp_path / "d.parquet"
    write_parquet(pd.DataFrame({"x": [1, 2]}), path)
    with pytest.raises(Exception):  # noqa: B017 - whatever pyarrow raises for an object it cannot store
        write_parquet(pd.DataFrame({"x": [object(), object()]}), path)
    assert pd.read_parquet(path)["x"].tolist() == [1, 2]
    assert os.listdir(tmp_path) == ["d.parquet"]
    with pytest.raises(TypeError):
        write_json({"x": object()}, tmp_path / "m.json")
    assert os.listdir(tmp_path) == ["d.parquet"]


def test_read_json_names_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        read_json(tmp_path / "nope.json")
