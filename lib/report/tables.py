"""Markdown cells and tables: one format for every number of the report, so a cell reads the same everywhere."""
from __future__ import annotations

import numpy as np


def fmt(x) -> str:
    """Table cell: metrics with 4 decimals, tiny values in e-notation, seconds/MB with few digits."""
    if x is None or (isinstance(x, float) and np.isnan(x)):
        return "–"
    if not isinstance(x, float):
        return str(x)
    a = abs(x)
    return (f"{x:.0f}" if a >= 100 else f"{x:.1f}" if a >= 10 else f"{x:.2f}" if a >= 1
            else f"{x:.4f}" if a >= 1e-3 or a == 0 else f"{x:.2e}")


def table(head: list[str], rows: list[list]) -> list[str]:
    """A markdown table: the first column left-aligned, the others right-aligned, cells through `fmt`."""
    return (["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
            + ["| " + " | ".join(fmt(c) for c in r) + " |" for r in rows])


def mean_sd_cell(mean: float | None, sd: float | None) -> str:
    """"0.0235 ± 0.0005" (several seeds) or "0.0235" (one)."""
    if mean is None:
        return "–"
    return f"{mean:.4f}" + (f" ± {sd:.4f}" if sd is not None else "")


def rel_change(new: float, old: float) -> str:
    """`new` relative to `old` as a signed percentage."""
    return f"{(new - old) / old:+.0%}" if old else "n/a (reference is 0)"


def ratio(new: float | None, old: float | None) -> str:
    """"×2.10": how many times `old` `new` is."""
    return f"×{new / old:.2f}" if isinstance(new, (int, float)) and isinstance(old, (int, float)) and old else "–"


def quoted(names) -> str:
    """Names as a comma-separated list of code spans."""
    return ", ".join(f"`{r}`" for r in names)


DEFAULT_VECTORS = "minilm"  # the study's default item vectors (= lib.vectors.DEFAULT_VECTORS, tested)


def other_vectors(info: dict) -> str | None:
    """The item vectors a run's run.json names when they are not the default ones (runs before the one
    vectors table name none: they read the default)."""
    v = info.get("vectors")
    return None if v in (None, DEFAULT_VECTORS) else v


def representation(info: dict) -> str:
    """A run's item representation with its backbone, tokenizer and item vectors: `sasrec · sid_unigram (opq)`,
    `sasrec · content [title]`; overrides (other than the seed) are named after it."""
    sets = info.get("overrides") or {}
    return (f"{info['backbone']} · {info['representation']}"
            + (f" ({info['tokenizer']})" if info.get("tokenizer") else "")
            + (f" [{other_vectors(info)}]" if other_vectors(info) else "")
            + (" {" + ", ".join(f"{k}={v}" for k, v in sorted(sets.items())) + "}" if sets else ""))
