"""Item vectors: params `vectors`, the one table of data/vectors/<name>, and the checks of their readers.

data/vectors/<name> holds item vectors: embeddings.npy (N+1, dim), row i = item i, row 0 = padding, and a
meta.json with n_items, dim, the vectors' `name` and the `protocol` whose training data they saw. The
table has one kind per stage that writes there:
  vectors.embed    item text through an encoder (stage embed@<name>): the `embed` section with `set`
                   overrides; they see no interactions, so protocol null: any protocol may read them
  vectors.collab   content vectors + a trained ranker's item rows (stage collab_vectors@<name>, lib/collab.py);
                   of that ranker's protocol only
Readers name them by `vectors`: tokenizers (params `tokenizers`) and content runs (`runs.content_rankers`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

KINDS = ("embed", "collab")  # the kinds of params `vectors`: one writing stage each (DVC refuses a name in both)
DEFAULT_VECTORS = "minilm"  # the study's default vectors (MiniLM on all fields): the report's reference


@dataclass(frozen=True)
class EmbedVectorsSpec:
    """Params `vectors.embed.<name>`: the `embed` section with overrides."""
    set: dict[str, Any] = field(default_factory=dict)  # overrides of the `embed` section: key -> value


def check_vectors_meta(meta: dict, vectors: str, protocol: str, where) -> None:
    """The vectors in `where` (their meta.json) must be `vectors`, and have seen no other protocol's
    training data: text vectors (protocol null) suit any protocol, collab vectors only their own."""
    if meta.get("name") != vectors:
        raise ValueError(f"{where} holds vectors {meta.get('name')!r}, not {vectors!r}")
    if meta.get("protocol") not in (None, protocol):
        raise ValueError(f"{where} holds vectors {vectors!r} of protocol {meta['protocol']!r} (built from that "
                         f"split's training data); the reader is of protocol {protocol!r}")
