"""Strict typed configs: one frozen dataclass per params.yaml section.

`from_dict` refuses unknown keys and wrong types with the offending key's name, so a
typo in params.yaml (or in `dvc exp run -S ...`) fails loudly instead of silently
falling back to a default.
"""
from __future__ import annotations

import copy
import dataclasses
import types
import typing
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")


class ConfigError(ValueError):
    """A params section that does not match its dataclass."""


def _check(value: Any, tp: Any, key: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{key}: {value!r} is not one of {list(get_args(tp))}")
        return value
    if origin in (Union, types.UnionType):
        for arg in get_args(tp):
            try:
                return _check(value, arg, key)
            except ConfigError:
                continue
        raise ConfigError(f"{key}: {value!r} does not match {tp}")
    if tp is type(None):
        if value is not None:
            raise ConfigError(f"{key}: expected null, got {value!r}")
        return None
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        args = get_args(tp)
        inner = args[0] if args else Any
        return tuple(_check(v, inner, f"{key}[{i}]") for i, v in enumerate(value))
    if origin is dict:  # a mapping of overrides (lib/runs.py): string keys, values checked where applied
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{key}: expected a mapping with string keys, got {value!r}")
        inner = get_args(tp)[1] if get_args(tp) else Any
        return {k: _check(v, inner, f"{key}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    raise ConfigError(f"{key}: unsupported config type {tp}")


def from_dict(cls: type[T], data: dict | None, section: str) -> T:
    """Build dataclass `cls` from `data`, checking keys and types; `section` names errors."""
    data = {} if data is None else data
    if not isinstance(data, dict):
        raise ConfigError(f"{section}: expected a mapping, got {data!r}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{section}: unknown key(s) {unknown}; known keys are {sorted(names)}")
    kwargs = {k: _check(v, hints[k], f"{section}.{k}") for k, v in data.items()}
    try:
        cfg = cls(**kwargs)
    except TypeError as e:  # a required field without default is missing
        raise ConfigError(f"{section}: {e}") from None
    validate = getattr(cfg, "validate", None)
    if validate is not None:
        try:
            validate()
        except ValueError as e:
            raise ConfigError(f"{section}.{e}") from None
    return cfg


def merge(base: dict | None, over: dict | None) -> dict:
    """A deep copy of `base` with `over`'s keys on top, mappings merged key by key (params sections that
    build one config: lib/runs.py sections_of)."""
    out = copy.deepcopy(base or {})
    for k, v in (over or {}).items():
        out[k] = merge(out.get(k) if isinstance(out.get(k), dict) else {}, v) if isinstance(v, dict) \
            else copy.deepcopy(v)
    return out


def apply_overrides(section: dict | None, overrides: dict[str, Any], where: str, cls: type) -> dict:
    """A copy of params `section` with dotted-key overrides applied (`train.seed: 1` -> section.train.seed).

    An override must name a field of the section's dataclass `cls` (a typo would otherwise train the
    default silently); the value's type is checked afterwards by `from_dict` like any params value.
    A mapping given for a sub-section (`train: {seed: 1}`, which is what `dvc exp run -S
    runs.<family>.<name>.set.train.seed=1` writes) is merged key by key like its dotted form, not
    swapped in whole: that would reset the sub-section's other keys to the dataclass defaults.
    """
    out = copy.deepcopy(section or {})
    pending = list(overrides.items())
    while pending:
        dotted, value = pending.pop(0)
        node, tp, parts = out, cls, str(dotted).split(".")
        for i, part in enumerate(parts):
            fields = {f.name: f for f in dataclasses.fields(tp)} if dataclasses.is_dataclass(tp) else {}
            if part not in fields:
                raise ConfigError(f"{where}.{dotted}: no such key in the section (at {'.'.join(parts[:i + 1])!r})")
            sub = typing.get_type_hints(tp)[part]
            if i < len(parts) - 1:
                tp, node = sub, node.setdefault(part, {})
            elif isinstance(value, dict) and dataclasses.is_dataclass(sub):
                pending[:0] = [(f"{dotted}.{k}", v) for k, v in value.items()]  # in order, before the rest
            else:
                node[part] = value
    return out


def table(params: dict, dotted: str) -> dict:
    """Params table `dotted` (`tokenizers`, or a kind of a table: `vectors.embed`); {} when absent."""
    node = params
    for part in dotted.split("."):
        node = (node or {}).get(part) if isinstance(node, dict) else None
    return node or {}


def load_table_entry(params: dict, table_name: str, name: str, section: str, cls: type,
                     spec_cls: type | None = None):
    """(entry spec, config) of a table whose entries override one section: `protocols` (the entry *is*
    the overrides of `split`), `tokenizers` (TokenizerSpec: vectors, protocol + `set` overrides of
    `rqvae`; lib/tokenizers/codes.py) or `vectors.embed` (lib/vectors.py EmbedVectorsSpec: `set` overrides of
    `embed`)."""
    entry = table(params, table_name).get(name)
    if entry is None:
        raise ConfigError(f"{table_name}.{name}: no such entry in params")
    spec = from_dict(spec_cls, entry, f"{table_name}.{name}") if spec_cls else None
    overrides, where = (spec.set, f"{table_name}.{name}.set") if spec_cls else (entry, f"{table_name}.{name}")
    return spec, from_dict(cls, apply_overrides(params.get(section), overrides, where, cls), section)


__all__ = ["ConfigError", "apply_overrides", "from_dict", "load_table_entry", "merge", "table", "typing"]

