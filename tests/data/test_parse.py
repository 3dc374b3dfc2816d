"""lib.data.parse: both metadata styles, malformed lines skipped and counted, no eval."""
from __future__ import annotations

import gzip
import json

import numpy as np
import pandas as pd
import pytest

from lib.data.parse import parse_meta, parse_reviews
from tests.conftest import write_gz

META_RECORDS = [
    {"asin": "X1", "title": "A &amp; B", "categories": [["Beauty", "Makeup"]], "price": 3.5},
    {"asin": "X2", "title": "Second", "description": "Soft.", "brand": "Acme",
     "categories": [["Beauty", "Skin Care", "Face"], ["Luxury Beauty"]], "price": "$1,234.50"},
    {"asin": "X3", "description": ["part one", "part two"]},  # no title, no price, list description
]


def _meta_table(tmp_path, lines):
    return parse_meta(write_gz(tmp_path / "meta.json.gz", lines))


def test_json_and_python_literal_metadata_parse_to_the_same_table(tmp_path):
    as_json, c_json = _meta_table(tmp_path / "j", [json.dumps(r) for r in META_RECORDS])
    as_lit, c_lit = _meta_table(tmp_path / "l", [repr(r) for r in META_RECORDS])
    assert repr(META_RECORDS[0]).startswith("{'asin': 'X1'")  # really the single-quoted style
    pd.testing.assert_frame_equal(as_json, as_lit)
    assert c_json == c_lit
    assert list(as_json["item_id"]) == ["X1", "X2", "X3"]
    row = as_json.set_index("item_id")
    assert row.loc["X1", "title"] == "A &amp; B"  # entities are preprocess's job, parse keeps raw text
    assert row.loc["X1", "categories"] == "Beauty > Makeup"
    assert row.loc["X2", "categories"] == "Beauty > Skin Care > Face | Luxury Beauty"
    assert row.loc["X1", "price"] == 3.5
    assert row.loc["X2", "price"] == 1234.5
    assert np.isnan(row.loc["X3", "price"])
    assert row.loc["X3", "title"] == ""
    assert row.loc["X3", "description"] == "part one part two"
    assert c_json == {"lines": 3, "malformed": 0, "duplicates": 0, "rows": 3, "with_title": 2,
                      "with_description": 2, "with_brand": 1, "with_categories": 2, "with_price": 2}


def test_flat_tag_sets_are_read_as_tags_not_as_a_path(tmp_path):
    """Yelp's layout: one outer list around an unordered tag set. `path` would make 'Chinese > Restaurants' a
    hierarchy; `tags` keeps the tags in file order, each once, and an empty set stays empty."""
    records = [{"asin": "B1", "title": "John's BBQ", "categories": [["Chinese", "Restaurants"]]},
               {"asin": "B2", "title": "Bank", "categories": [[]]},
               {"asin": "B3", "title": "Bar", "categories": [["Bars", "Food"], ["Bars", "Nightlife"]]},
               {"asin": "B4", "title": "No field"}]
    path = write_gz(tmp_path / "meta.json.gz", [json.dumps(r) for r in records])
    tags, counts = parse_meta(path, "tags")
    assert list(tags["categories"]) == ["Chinese, Restaurants", "", "Bars, Food, Nightlife", ""]
    assert counts["with_categories"] == 2
    as_path, _ = parse_meta(path)  # the default: Amazon's paths
    assert as_path.loc[0, "categories"] == "Chinese > Restaurants"
    pd.testing.assert_frame_equal(tags.drop(columns="categories"), as_path.drop(columns="categories"))


def test_malformed_metadata_lines_are_skipped_and_counted(tmp_path):
    lines = [
        repr(META_RECORDS[0]),
        "this is not a record",
        "[1, 2, 3]",  # valid JSON, not a dict
        "{'title': 'no asin'}",
        "{'asin': 42}",  # asin not a string
        "{[1]: 2}",  # literal_eval raises TypeError (unhashable key)
        "{'asin': 'X9'",  # cut off
        "",  # blank lines are not records
        json.dumps(META_RECORDS[1]),
        repr({**META_RECORDS[0], "title": "duplicate"}),  # second record of X1: first one wins
    ]
    df, counts = _meta_table(tmp_path, lines)
    assert list(df["item_id"]) == ["X1", "X2"]
    assert df.loc[0, "title"] == "A &amp; B"
    assert counts["lines"] == 9
    assert counts["malformed"] == 6
    assert counts["duplicates"] == 1
    assert counts["rows"] == 2


def test_metadata_is_read_with_literal_eval_not_eval(tmp_path):
    marker = tmp_path / "pwned"
    lines = [
        f"__import__('os').system('touch {marker}')",
        f"{{'asin': __import__('os').system('touch {marker}')}}",
        "{'asin': 'X' + 'Y'}",  # eval would give 'XY'
        repr(META_RECORDS[0]),
    ]
    df, counts = _meta_table(tmp_path, lines)
    assert not marker.exists()
    assert counts["malformed"] == 3
    assert list(df["item_id"]) == ["X1"]


def test_empty_metadata_file_gives_an_empty_table_with_all_columns(tmp_path):
    df, counts = _meta_table(tmp_path, [])
    assert df.empty
    assert list(df.columns) == ["item_id", "title", "description", "brand", "categories", "price"]
    assert counts["rows"] == 0


def _review(user, item, t, **extra):
    return json.dumps({"reviewerID": user, "asin": item, "unixReviewTime": t, **extra})


def test_reviews_keep_file_order_and_have_no_rating_column_without_overall(tmp_path):
    lines = [_review("u2", "b", 30), _review("u1", "a", 10), _review("u1", "b", 10)]
    df, counts = parse_reviews(write_gz(tmp_path / "r.json.gz", lines))
    assert list(df.columns) == ["user_id", "item_id", "timestamp"]
    assert df["timestamp"].dtype == np.int64
    assert df.values.tolist() == [["u2", "b", 30], ["u1", "a", 10], ["u1", "b", 10]]
    assert counts == {"lines": 3, "malformed": 0, "rows": 3, "has_rating": False}


def test_reviews_have_a_rating_column_when_overall_is_present(tmp_path):
    lines = [_review("u1", "a", 1, overall=5.0), _review("u1", "b", 2), _review("u2", "a", 3, overall=2)]
    df, counts = parse_reviews(write_gz(tmp_path / "r.json.gz", lines))
    assert counts["has_rating"] is True
    assert df["rating"].dtype == np.float64
    np.testing.assert_array_equal(df["rating"].to_numpy(), [5.0, np.nan, 2.0])


def test_malformed_review_lines_are_skipped_and_counted(tmp_path):
    lines = [
        _review("u1", "a", 100),
        "garbage {",
        "[\"u1\", \"a\", 1]",
        json.dumps({"reviewerID": "u1", "asin": "b"}),  # no unixReviewTime
        json.dumps({"reviewerID": "u1", "unixReviewTime": 5}),  # no asin
        _review("u1", "c", "yesterday"),
        '{"reviewerID": "u1", "asin": "d", "unixReviewTime": Infinity}',  # int(inf) overflows
        _review("u1", "e", 10**30),  # does not fit the int64 column
        _review("u1", "f", 5, overall="five"),
        "{'reviewerID': 'u2', 'asin': 'g', 'unixReviewTime': 200}",  # literal style is fine too
    ]
    df, counts = parse_reviews(write_gz(tmp_path / "r.json.gz", lines))
    assert df.values.tolist() == [["u1", "a", 100], ["u2", "g", 200]]
    assert counts == {"lines": 10, "malformed": 8, "rows": 2, "has_rating": False}


def test_undecodable_bytes_do_not_abort_parsing(tmp_path):
    path = tmp_path / "r.json.gz"
    with gzip.open(path, "wb") as f:
        f.write(b'{"reviewerID": "u\xff1", "asin": "a", "unixReviewTime": 1}\n')
        f.write(b'{"reviewerID": "u2", "asin": "a", "unixReviewTime": 2}\n')
    df, counts = parse_reviews(path)
    assert counts["malformed"] == 0
    assert len(df) == 2


@pytest.mark.parametrize("style", [json.dumps, repr])
def test_review_records_parse_in_both_styles(tmp_path, style):
    rec = {"reviewerID": "A1", "asin": "B1", "unixReviewTime": 1400000000, "overall": 4.0,
           "summary": "it's ok"}
    df, _ = parse_reviews(write_gz(tmp_path / "r.json.gz", [style(rec)]))
    assert df.to_dict("records") == [
        {"user_id": "A1", "item_id": "B1", "timestamp": 1400000000, "rating": 4.0}]
