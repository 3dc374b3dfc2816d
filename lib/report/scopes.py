"""Scopes and list rules: which models may share a table, and which may enter one at all.

A scope is one protocol under one protocol version (run.json `protocol_version`; runs before issue 29
have none and are version 1). Two runs of different scopes were scored on different lists (another
split, another catalogue), so no table of the report holds runs of two scopes. Version 1 runs used a
catalogue selected by the future (the 5-core filter over the whole timeline): their scope is labelled
superseded and exploratory wherever it is shown.

A rule run is one whose lists were edited by a rule that injects items (run.json `rules`: the cold shift,
TIGER's cold-start rule). A rule is not a model: such a run never enters an answer table or leaderboard,
only the appendix's note on analyses with list rules. Version 1 runs did not record their rules: the
cold shift left `cold_shift` in the training metrics, and every Semantic-ID generator of that time
applied TIGER's cold-start rule unless its `decode.cold_every` was set to 0.
"""
from __future__ import annotations

from dataclasses import dataclass

from lib.report.config import Baseline
from lib.report.models import VAL_KEY, Models
from lib.report.tables import other_vectors

PRE29 = 1  # the version of runs without `protocol_version`
OLD_GENERATOR_FAMILY = "generators"  # version 1: TIGER's cold-start rule on by default (gpt2_sid.decode.cold_every)


@dataclass(frozen=True, order=True)
class Scope:
    protocol: str
    version: int
    current: bool

    @property
    def name(self) -> str:
        """The appendix's file stem: the protocol, with a suffix for a superseded version."""
        if self.current:
            return self.protocol
        return f"{self.protocol}_pre29" if self.version == PRE29 else f"{self.protocol}_v{self.version}"

    @property
    def label(self) -> str:
        if self.current:
            return "current protocol (#29)"
        if self.version == PRE29:
            return "pre-#29 protocol (catalogue selected by the future; superseded, exploratory)"
        return f"protocol version {self.version} (not the report's current one; exploratory)"

    def caption(self) -> str:
        """The line above every model table: the scope its rows belong to."""
        return f"*Runs of protocol `{self.protocol}`, {self.label}.*"


def version_of(info: dict) -> int:
    return int(info.get("protocol_version", PRE29))


def rules_of(info: dict, train: dict | None) -> list[str]:
    """The list rules a run (or model) applied: run.json `rules`; for version 1, inferred (module doc)."""
    if "protocol_version" in info:
        return list(info.get("rules") or [])
    out = []
    if "cold_shift" in (train or {}):
        out.append("cold_shift")
    if info.get("family") == OLD_GENERATOR_FAMILY and (info.get("overrides") or {}).get("decode.cold_every") != 0:
        out.append("tiger_cold_start")
    return out


def scope_of(info: dict, current_version: int) -> Scope:
    v = version_of(info)
    return Scope(info["protocol"], v, v == current_version)


def by_scope(models: Models, current_version: int) -> dict[Scope, tuple[list[str], list[str]]]:
    """Scope -> (models without rules, rule models), both by name; current scopes first, then by protocol."""
    out: dict[Scope, tuple[list[str], list[str]]] = {}
    for m in sorted(models.runs):
        s = scope_of(models.runs[m], current_version)
        plain, ruled = out.setdefault(s, ([], []))
        (ruled if rules_of(models.runs[m], models.train.get(m)) else plain).append(m)
    return dict(sorted(out.items(), key=lambda kv: (not kv[0].current, -kv[0].version, kv[0].protocol)))


def best_on_validation(names: list[str], models: Models) -> str | None:
    """The model with the highest validation NDCG@10 (ties by name): test figures never choose."""
    return next(iter(by_validation(names, models)), None)


def by_validation(names: list[str], models: Models) -> list[str]:
    """Names, best validation NDCG@10 first (ties by name)."""
    return sorted(names, key=lambda r: (-models.evals[r].get(VAL_KEY, -1.0), r))


def reference_of(names: list[str], models: Models, b: Baseline) -> str | None:
    """The scope's model of backbone + representation `b`: the one without overrides on the default item
    vectors, else the first such by name."""
    found = sorted((bool(models.runs[r].get("overrides")), bool(other_vectors(models.runs[r])), r) for r in names
                   if models.runs[r]["backbone"] == b.backbone and models.runs[r]["representation"] == b.representation)
    return found[0][-1] if found else None


def row_reference(model: str, present: list[str], declared: list[str], models: Models) -> str | None:
    """The reference a row is compared with (lib/report/config.py Question): the first present reference sharing
    its family, else its backbone; None when a declared reference of its family or backbone exists but has not
    run in this scope (its comparison waits for it); else the first present reference."""
    info = models.runs[model]
    for key in ("family", "backbone"):
        same = [r for r in present if models.runs[r].get(key) == info.get(key)]
        if same:
            return same[0]
    for key in ("family", "backbone"):
        if any(r in models.runs and models.runs[r].get(key) == info.get(key) for r in declared if r not in present):
            return None
    return present[0] if present else None


def matches(info: dict, like: dict) -> bool:
    """A run.json against a selector {key: value}: every key equal; `overrides` counts as {} when not given."""
    want = {"overrides": {}} | like
    have = info | {"overrides": info.get("overrides") or {}}
    return all(have.get(k) == v for k, v in want.items())
