"""lib.config: strict typed configs; every error names the offending key."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest
import yaml

from lib.config import ConfigError, from_dict
from lib.data.parse import ParseConfig
from lib.data.preprocess import PreprocessConfig
from lib.data.split import SplitConfig

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Inner:
    size: int = 2


@dataclass(frozen=True)
class Demo:
    sizes: tuple[int, ...] = (1, 2)  # lists in YAML become tuples (frozen, hashable)
    inner: Inner = dataclasses.field(default_factory=Inner)
    mode: Literal["a", "b"] = "a"
    rate: float | None = None


def test_defaults_when_section_is_missing():
    assert from_dict(SplitConfig, None, "split") == SplitConfig()
    assert from_dict(PreprocessConfig, {}, "preprocess") == PreprocessConfig()


def test_values_are_taken_and_ints_widen_to_float():
    cfg = from_dict(ParseConfig, {"category": "Toys", "download_timeout": 5}, "parse")
    assert cfg.category == "Toys"
    assert cfg.download_timeout == 5.0 and isinstance(cfg.download_timeout, float)
    assert from_dict(PreprocessConfig, {"min_rating": 4}, "preprocess").min_rating == 4.0
    assert from_dict(PreprocessConfig, {"min_rating": None}, "preprocess").min_rating is None


def test_unknown_key_is_named():
    with pytest.raises(ConfigError) as e:
        from_dict(SplitConfig, {"quantile": 0.9, "quantil": 0.8}, "split")
    assert "split" in str(e.value) and "'quantil'" in str(e.value)
    assert "quantile" in str(e.value)  # the known keys are listed to spot the typo


@pytest.mark.parametrize(("cls", "section", "data", "name"), [
    (PreprocessConfig, "preprocess", {"min_user_interactions": "5"}, "preprocess.min_user_interactions"),
    (PreprocessConfig, "preprocess", {"min_item_interactions": 5.0}, "preprocess.min_item_interactions"),
    (PreprocessConfig, "preprocess", {"min_item_interactions": True}, "preprocess.min_item_interactions"),
    (PreprocessConfig, "preprocess", {"remove_consecutive_repeats": 1},
     "preprocess.remove_consecutive_repeats"),
    (PreprocessConfig, "preprocess", {"min_rating": "4"}, "preprocess.min_rating"),
    (SplitConfig, "split", {"quantile": "0.9"}, "split.quantile"),
    (SplitConfig, "split", {"quantile": False}, "split.quantile"),
    (ParseConfig, "parse", {"category": 3}, "parse.category"),
])
def test_wrong_type_names_section_and_key(cls, section, data, name):
    with pytest.raises(ConfigError, match=name.replace(".", r"\.")):
        from_dict(cls, data, section)


@pytest.mark.parametrize("value", ["random", "Global_Temporal", None, 1])
def test_literal_violation_lists_the_choices(value):
    with pytest.raises(ConfigError) as e:
        from_dict(SplitConfig, {"type": value}, "split")
    assert "split.type" in str(e.value)
    assert "global_temporal" in str(e.value) and "leave_one_out" in str(e.value)


def test_literal_accepts_its_values():
    assert from_dict(SplitConfig, {"type": "leave_one_out"}, "split").type == "leave_one_out"


@pytest.mark.parametrize("q", [1.5, 1.0, 0.0, -0.1, 1])
def test_bad_quantile_is_rejected(q):
    with pytest.raises(ConfigError, match=r"split\.quantile"):
        from_dict(SplitConfig, {"quantile": q}, "split")


@pytest.mark.parametrize(("key", "value"), [("min_user_interactions", 0), ("min_item_interactions", -1),
                                            ("max_iterations", 0)])
def test_preprocess_validation_names_the_key(key, value):
    with pytest.raises(ConfigError, match=rf"preprocess\.{key}"):
        from_dict(PreprocessConfig, {key: value}, "preprocess")


def test_section_must_be_a_mapping():
    with pytest.raises(ConfigError, match="split"):
        from_dict(SplitConfig, [0.9], "split")


def test_nested_lists_and_dataclasses():
    cfg = from_dict(Demo, {"sizes": [3, 4], "inner": {"size": 7}, "mode": "b", "rate": 1}, "demo")
    assert cfg == Demo(sizes=(3, 4), inner=Inner(7), mode="b", rate=1.0)
    with pytest.raises(ConfigError, match=r"demo\.sizes\[1\]"):
        from_dict(Demo, {"sizes": [3, "x"]}, "demo")
    with pytest.raises(ConfigError, match=r"demo\.inner.*'sise'"):
        from_dict(Demo, {"inner": {"sise": 1}}, "demo")
    with pytest.raises(ConfigError, match=r"demo\.sizes"):
        from_dict(Demo, {"sizes": 3}, "demo")


def test_configs_are_frozen():
    cfg = SplitConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.quantile = 0.5  # type: ignore[misc]


@pytest.mark.parametrize(("section", "cls"), [("parse", ParseConfig), ("preprocess", PreprocessConfig),
                                              ("split", SplitConfig)])
def test_repository_params_load(section, cls):
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    cfg = from_dict(cls, params[section], section)
    assert set(params[section]) == {f.name for f in dataclasses.fields(cls)}  # no key left to a default
    assert isinstance(cfg, cls)
