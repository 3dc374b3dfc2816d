"""Item vectors other than data/embed: the tables that write and read data/vectors/<name>, and their checks.

data/vectors/<name> holds item vectors in the embed stage's contract (embeddings.npy (N+1, dim), row i =
item i, row 0 = padding; meta.json with n_items and dim) plus, in meta.json, the vectors' `name` and the
`protocol` whose training data they saw. Two tables write there:
  text_vectors     the embed stage with another item text or encoder (`set` overrides of `embed`); they
                   see no interactions, so protocol null: any protocol's tokenizer or run may read them
  collab_vectors   content + a trained ranker's item rows (lib/collab.py); the ranker's protocol
Two tables read them, each under its own namespace:
  vector_tokenizers  a `tokenizers` entry plus `vectors` -> data/tokenizers/<name> (runs name it in `tokenizer`)
  vector_rankers     a `runs.content_rankers` entry plus `vectors` -> results/<name>, like any run
"""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from lib.config import ConfigError, from_dict
from lib.runs import REPRESENTATIONS, RunSpec, apply_overrides

WRITERS = ("text_vectors", "collab_vectors")  # the tables whose entries write data/vectors/<name>
RANKER_FAMILY = "content_rankers"  # a vector ranker is this family's run with other vectors


@dataclass(frozen=True)
class TextVectorsSpec:
    """Params `text_vectors.<name>`: the `embed` section with overrides."""
    set: dict[str, Any] = field(default_factory=dict)  # overrides of the `embed` section: key -> value


@dataclass(frozen=True)
class VectorTokenizerSpec:
    """Params `vector_tokenizers.<name>`: a `tokenizers` entry over the vectors of data/vectors/<vectors>."""
    vectors: str  # a key of params `text_vectors` or `collab_vectors`
    protocol: str  # whose split's training items the tokenizer is fit on (collab vectors: theirs)
    set: dict[str, Any] = field(default_factory=dict)  # overrides of the `rqvae` section: key -> value


def check_names(tables: dict[str, Iterable[str] | None], writes: str) -> None:
    """Tables whose entries all write `writes` (e.g. data/tokenizers/<name>) must not share a name."""
    owners: dict[str, list[str]] = {}
    for table, names in tables.items():
        for name in names or ():
            owners.setdefault(name, []).append(table)
    clash = {n: t for n, t in sorted(owners.items()) if len(t) > 1}
    if clash:
        raise ConfigError("; ".join(f"{n!r} is a key of {' and '.join(t)}" for n, t in clash.items())
                          + f": each would write {writes}; rename one")


def check_vectors_meta(meta: dict, vectors: str, protocol: str, where) -> None:
    """The vectors in `where` (their meta.json) must be `vectors`, and have seen no other protocol's
    training data: text vectors (protocol null) suit any protocol, collab vectors only their own."""
    if meta.get("name") != vectors:
        raise ValueError(f"{where} holds vectors {meta.get('name')!r}, not {vectors!r}")
    if meta.get("protocol") not in (None, protocol):
        raise ValueError(f"{where} holds vectors {vectors!r} of protocol {meta['protocol']!r} (built from that "
                         f"split's training data); the reader is of protocol {protocol!r}")


def load_vector_run(params: dict, table: str, name: str, cls: type) -> tuple[str, RunSpec, Any]:
    """(vectors, RunSpec, config) of params `<table>.<name>`: a `runs.content_rankers` entry plus `vectors`.

    Checked like the runs table (lib/runs.py parse_run and load_run), errors naming `<table>.<name>`; the
    config is the backbone's section with the entry's `set` overrides, as `cls`.
    """
    key = f"{table}.{name}"
    entry = (params.get(table) or {}).get(name)
    if entry is None:
        raise ConfigError(f"{key}: no such entry in params")
    if not isinstance(entry, dict):
        raise ConfigError(f"{key}: expected a mapping, got {entry!r}")
    vectors = entry.get("vectors")
    if not isinstance(vectors, str) or not vectors:
        raise ConfigError(f"{key}.vectors: required, a key of {' or '.join(WRITERS)}")
    spec = from_dict(RunSpec, {k: v for k, v in entry.items() if k != "vectors"}, key)
    kinds = REPRESENTATIONS[RANKER_FAMILY]
    spec = dataclasses.replace(spec, representation=spec.representation or kinds[0])
    if spec.representation not in kinds:
        raise ConfigError(f"{key}.representation: {spec.representation!r} is not one of {list(kinds)}")
    if spec.tokenizer is not None:
        raise ConfigError(f"{key}.tokenizer: not used by a content run")
    merged = apply_overrides(params.get(spec.backbone), spec.set, f"{key}.set", cls)
    return vectors, spec, from_dict(cls, merged, spec.backbone)
