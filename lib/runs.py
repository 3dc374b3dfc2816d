"""The study's runs as data: one entry of params `runs.<family>.<name>` per trained model.

A run names what varies between the study's models — the backbone, how items are represented,
which tokenizer's codes it reads, under which protocol it is trained and evaluated — plus
`set`, overrides of its backbone's params section (dotted keys, e.g. `train.seed: 1`). dvc.yaml
expands each family's table into one training and one evaluation stage per run, and every
training stage writes the resolved description as `run.json`: the evaluator and the report read
that file, never a run's name.

Families (each one training stage definition in dvc.yaml, with exactly the inputs it reads):
  rankers           SASRec / GPT-2 scoring every item, item IDs only
  content_rankers   the same with item vectors (content_init, content, content_plus_id; `vectors`)
  code_rankers      the same with a tokenizer's codes as item features (Singh et al. 2023)
  generators        GPT-2 generating the next item's Semantic ID (TIGER-style)
  parallel_generators  GPT-2 predicting all digits of a long Semantic ID at once (RPG, Hou et al. 2025)
"""
from __future__ import annotations

import copy
import dataclasses
import typing
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from lib.config import ConfigError, from_dict

FAMILIES = ("rankers", "content_rankers", "code_rankers", "generators", "parallel_generators")
FAMILY_SECTIONS = {"generators": "gpt2_sid", "parallel_generators": "rpg"}  # else the backbone's section
# family -> the item representations it may use (the ranker families share lib/models)
REPRESENTATIONS = {
    "rankers": ("id",),
    "content_rankers": ("content_init", "content", "content_plus_id"),
    "code_rankers": ("sid_unigram", "sid_bigram", "sid_plus_id"),
    "generators": ("sid",),
    "parallel_generators": ("sid_parallel",),
}


@dataclass(frozen=True)
class RunSpec:
    backbone: Literal["sasrec", "gpt2"]  # the params section the run starts from (generators: gpt2_sid)
    protocol: str  # a key of params `protocols`: the split it is trained and evaluated on (dvc.yaml needs it)
    representation: str | None = None  # item representation (REPRESENTATIONS[family]); null = the family's first
    vectors: str | None = None  # a key of params `vectors` (content rankers: the item vectors they read)
    tokenizer: str | None = None  # a key of params `tokenizers` (code rankers and generators)
    set: dict[str, Any] = field(default_factory=dict)  # overrides of the section: dotted key -> value


@dataclass(frozen=True)
class TokenizerSpec:
    vectors: str  # a key of params `vectors`: the item vectors it quantises (dvc.yaml needs it)
    protocol: str  # whose split's training items the tokenizer is fit on (dvc.yaml needs it)
    set: dict[str, Any] = field(default_factory=dict)  # overrides of the `rqvae` section: key -> value


def parse_run(family: str, name: str, entry: dict | None) -> RunSpec:
    """Params `runs.<family>.<name>` -> a checked RunSpec; errors name the key."""
    key = f"runs.{family}.{name}"
    if family not in FAMILIES:
        raise ConfigError(f"runs.{family}: unknown family; known: {list(FAMILIES)}")
    if entry is None:
        raise ConfigError(f"{key}: no such run in params")
    spec = from_dict(RunSpec, entry, key)
    if spec.representation is None:
        spec = dataclasses.replace(spec, representation=REPRESENTATIONS[family][0])
    if spec.representation not in REPRESENTATIONS[family]:
        raise ConfigError(f"{key}.representation: {spec.representation!r} is not one of "
                          f"{list(REPRESENTATIONS[family])} (family {family})")
    needs_codes = family in ("code_rankers", "generators", "parallel_generators")
    if needs_codes != (spec.tokenizer is not None):
        raise ConfigError(f"{key}.tokenizer: " + ("required for family " if needs_codes else "not used by family ")
                          + family)
    needs_vectors = family == "content_rankers"
    if needs_vectors != (spec.vectors is not None):
        raise ConfigError(f"{key}.vectors: " + ("required for family " if needs_vectors else "not used by family ")
                          + family)
    if not isinstance(spec.set, dict):
        raise ConfigError(f"{key}.set: expected a mapping of dotted keys")
    return spec


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


# 2 = issue 29: lists and training objectives over the catalogue known at their cut-offs, random same-day
# ties by default, the knowable cold pool. Runs without the key (1) predate it: the report keeps them apart.
PROTOCOL_VERSION = 2


def run_info(name: str, family: str, spec: RunSpec, seed: int, n_levels: int | None = None,
             rules: Sequence[str] = ()) -> dict:
    """The run.json a training stage writes: what the evaluator and the report know about a run.

    rules: names of list-injection rules applied to the run's lists ("cold_shift", "tiger_cold_start"):
    such a run is an analysis, never a leaderboard row (issue 29).
    """
    info = {"name": name, "family": family, "backbone": spec.backbone, "representation": spec.representation,
            "tokenizer": spec.tokenizer, "protocol": spec.protocol, "n_levels": n_levels, "seed": seed,
            "overrides": asdict(spec)["set"], "protocol_version": PROTOCOL_VERSION, "rules": list(rules)}
    return info | ({"vectors": spec.vectors} if spec.vectors else {})


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
    `rqvae`) or `vectors.embed` (lib/vectors.py EmbedVectorsSpec: `set` overrides of `embed`)."""
    entry = table(params, table_name).get(name)
    if entry is None:
        raise ConfigError(f"{table_name}.{name}: no such entry in params")
    spec = from_dict(spec_cls, entry, f"{table_name}.{name}") if spec_cls else None
    overrides, where = (spec.set, f"{table_name}.{name}.set") if spec_cls else (entry, f"{table_name}.{name}")
    return spec, from_dict(cls, apply_overrides(params.get(section), overrides, where, cls), section)


def check_codes_protocol(meta: dict, protocol: str, where) -> None:
    """A run may read only codes fit under its own protocol: another split's training items would leak
    (leave-one-out codes know items that are test targets under the temporal split, and vice versa)."""
    if meta.get("protocol", protocol) != protocol:
        raise ValueError(f"{where} was fit under protocol {meta['protocol']!r}, the run uses {protocol!r}")


def section_of(family: str, spec: RunSpec) -> str:
    """The params section a run starts from: a generator family's own, else its backbone's."""
    return FAMILY_SECTIONS.get(family, spec.backbone)


def load_run(params: dict, family: str, name: str, cls: type) -> tuple[RunSpec, Any]:
    """(RunSpec, the run's config): its section with the run's overrides, checked as `cls`."""
    spec = parse_run(family, name, ((params.get("runs") or {}).get(family) or {}).get(name))
    section = section_of(family, spec)
    merged = apply_overrides(params.get(section), spec.set, f"runs.{family}.{name}.set", cls)
    return spec, from_dict(cls, merged, section)
