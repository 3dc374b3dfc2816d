"""The study's runs as data: one entry of params `runs.<family>.<name>` per trained model.

A run names what varies between the study's models — the backbone, how items are represented,
which item vectors or tokenizer's codes it reads, under which protocol it is trained and evaluated —
plus `set`, overrides of its config (dotted keys, e.g. `train.seed: 1`). Its config merges params
sections (`sections_of`): the training settings every family shares (`train`), then its family's. dvc.yaml
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

import dataclasses
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from lib.config import ConfigError, apply_overrides, from_dict, merge

FAMILIES = ("rankers", "content_rankers", "code_rankers", "generators", "parallel_generators")
SHARED_TRAIN = "train"  # training settings shared by every family (seed, threads, device, ...)
RANKER_SECTION = "seqrec"  # the ranker families' training and output; their backbone's section: its model
FAMILY_SECTIONS = {"generators": ("gpt2_sid",), "parallel_generators": ("rpg",)}  # else seqrec + the backbone
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
    backbone: Literal["sasrec", "gpt2"]  # the model: params section `sasrec` or `gpt2` (generators: always GPT-2)
    protocol: str  # a key of params `protocols`: the split it is trained and evaluated on (dvc.yaml needs it)
    representation: str | None = None  # item representation (REPRESENTATIONS[family]); null = the family's first
    vectors: str | None = None  # a key of params `vectors` (content rankers: the item vectors they read)
    tokenizer: str | None = None  # a key of params `tokenizers` (code rankers and generators)
    set: dict[str, Any] = field(default_factory=dict)  # overrides of the section: dotted key -> value


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


def check_codes_protocol(meta: dict, protocol: str, where) -> None:
    """A run may read only codes fit under its own protocol: another split's training items would leak
    (leave-one-out codes know items that are test targets under the temporal split, and vice versa)."""
    if meta.get("protocol", protocol) != protocol:
        raise ValueError(f"{where} was fit under protocol {meta['protocol']!r}, the run uses {protocol!r}")


def sections_of(family: str, spec: RunSpec) -> list[str]:
    """The params sections a run's config is merged from, in order (a later one's keys win): the training
    settings every family shares (`train`, under the config's `train`), then the family's own section
    (`gpt2_sid`, `rpg`; the ranker families: `seqrec`, their training, then the backbone's, their model)."""
    return [SHARED_TRAIN, *FAMILY_SECTIONS.get(family, (RANKER_SECTION, spec.backbone))]


def run_section(params: dict, family: str, spec: RunSpec) -> dict:
    """A run's config as plain data, before its own overrides: its sections merged (lib.config.merge)."""
    out: dict = {}
    for name in sections_of(family, spec):
        section = params.get(name) or {}
        out = merge(out, {"train": section} if name == SHARED_TRAIN else section)
    return out


def load_run(params: dict, family: str, name: str, cls: type) -> tuple[RunSpec, Any]:
    """(RunSpec, the run's config): its sections merged, then the run's `set` overrides, checked as `cls`."""
    spec = parse_run(family, name, ((params.get("runs") or {}).get(family) or {}).get(name))
    sections = sections_of(family, spec)
    merged = apply_overrides(run_section(params, family, spec), spec.set, f"runs.{family}.{name}.set", cls)
    return spec, from_dict(cls, merged, "+".join(sections))
