"""The one road every trained run travels, from its runs-table entry to its committed files.

    seed and threads -> fit on `train`, early stopping on validation NDCG@10
    -> when the split says so (split.json retrain_on_validation), seed again and refit on `train_full`
       for the epoch count validation chose
    -> validation lists from the model chosen on validation, test lists from the final model
    -> the checkpoint, the training facts (metrics/train/<run>.json) and run.json

A family plugs in only what differs (`Family`): rankers (lib/models/road.py), the TIGER-style generator
(lib/sid/road.py), RPG (lib/rpg/road.py). Which data each list's model is fit on is the split's rule
(lib/data/split.py SplitData.fit_rows); what a list may hold is the family's, over the split's catalogue.
Committed files are replaced only when the run succeeds: the curves are written into a scratch directory
swapped in at the end (lib/io.py atomic_dir), every file atomically, so a failed or killed run leaves the
committed ones as they were.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import pandas as pd

from lib.data.split import LISTS, SplitData
from lib.io import atomic_dir, write_json, write_parquet
from lib.runs import RunSpec, run_info
from lib.trainer import machine, peak_memory_mb, publish_checkpoint, seed_and_pin, torch_device


class Family(Protocol):
    """What a family plugs into the road. `head` and `tail` are its facts before and after the training
    facts in metrics/train/<run>.json; `n_levels` and `rules` go to run.json."""
    family: str  # the runs-table family (params runs.<family>)
    head: dict
    tail: dict
    n_levels: int | None
    rules: list[str]

    def fit(self, split: SplitData, ckpt_dir: str, logger) -> tuple[Any, dict]:
        """Train on split.train with early stopping on split.val: (the best module, training facts)."""

    def refit(self, split: SplitData, epochs: int) -> Any:
        """Train a fresh module on split.train_full for `epochs` epochs."""

    def before_lists(self, best, split: SplitData, device: str) -> dict:
        """Anything chosen on validation before the lists are made (a list rule's knob); its facts."""

    def lists(self, module, split: SplitData, lists: str, device: str) -> tuple[pd.DataFrame, dict]:
        """The top-K lists of split.rows(lists) by `module`, and facts about them (prefixed by `lists`)."""


@dataclass(frozen=True)
class RunFiles:
    """Where a run's outputs go (the training stage's flags)."""
    model_dir: Path  # model.ckpt (weights + config)
    recs_dir: Path  # val.parquet, test.parquet
    metrics: Path  # training facts JSON
    plots_dir: Path  # dvclive curves
    run_info: Path  # run.json

    @classmethod
    def of(cls, args) -> RunFiles:
        return cls(args.model_dir, args.recs_dir, args.metrics, args.plots_dir, args.run_info)


def train_run(name: str, spec: RunSpec, part: Family, split: SplitData, files: RunFiles, tc,
              logger_for: Callable[[Path], Any]) -> dict:
    """Train run `name` (its table entry `spec`) of `part`'s family on `split` and write its files.

    tc: the run's train config (seed, threads, device); logger_for(directory) -> a Lightning logger writing
    curves there. Returns the training facts as written. A ValueError of the family (bad inputs) exits
    with its message.
    """
    ckpt_tmp = files.model_dir.parent / f".{files.model_dir.name}.ckpt_tmp"
    device = torch_device(tc.device)
    with atomic_dir(files.plots_dir) as plots:
        seed_and_pin(tc.seed, tc.threads)
        try:
            best, facts = part.fit(split, str(ckpt_tmp), logger_for(plots))
        except ValueError as e:
            raise SystemExit(f"error: {e}") from None
        final = best  # validation lists always come from the model chosen on validation
        if split.refit:
            t0 = time.perf_counter()
            seed_and_pin(tc.seed, tc.threads)
            final = part.refit(split, facts["best_epoch"])
            final.trainer.save_checkpoint(ckpt_tmp / "best.ckpt", weights_only=True)
            facts |= {"retrained_on_validation_epochs": facts["best_epoch"],
                      "refit_seconds": round(time.perf_counter() - t0, 1)}
        facts |= part.before_lists(best, split, device)
        for lists, module in zip(LISTS, (best, final), strict=True):
            recs, more = part.lists(module, split, lists, device)
            write_parquet(recs, files.recs_dir / f"{lists}.parquet")
            facts |= more
        publish_checkpoint(ckpt_tmp, files.model_dir)
        facts = {"model": name, **part.head, **facts, **part.tail, "peak_memory_mb": peak_memory_mb(device),
                 "machine": machine(device)}
        write_json(facts, files.metrics)
        write_json(run_info(name, part.family, spec, tc.seed, part.n_levels, part.rules), files.run_info)
    return facts
