"""Evaluation figures drawn from the long tables that `dvc plots` also reads.

Figures are built on the Agg canvas directly (no pyplot): no global figure registry to leak
or close, and no display needed on a headless runner.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _figure(n_panels: int) -> tuple[Figure, np.ndarray]:
    fig = Figure(figsize=(4.0 * max(n_panels, 1), 3.4), layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, max(n_panels, 1), squeeze=False)[0]


def metrics_vs_k_figure(table: pd.DataFrame) -> Figure:
    """(model, k, metric, value) -> one panel per metric, one line per model, K on a log axis."""
    names = list(dict.fromkeys(table["metric"]))
    fig, axes = _figure(len(names))
    for ax, name in zip(axes, names, strict=False):
        sub = table[table["metric"] == name]
        for model, g in sub.groupby("model", sort=False):
            ax.plot(g["k"], g["value"], marker="o", label=model)
        ks = sorted(sub["k"].unique())
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(ks, labels=[str(k) for k in ks])
        ax.set(title=f"{name.upper()}@K (test)", xlabel="K")
        ax.grid(alpha=0.3)
    if names:
        axes[0].legend(fontsize="small")
    return fig


def cold_warm_figure(table: pd.DataFrame) -> Figure:
    """(model, slice, metric, value) -> one panel per metric, bars by slice, one colour per model."""
    names = list(dict.fromkeys(table["metric"]))
    fig, axes = _figure(len(names))
    slices = list(dict.fromkeys(table["slice"]))
    models = list(dict.fromkeys(table["model"]))
    width = 0.8 / max(len(models), 1)
    for ax, name in zip(axes, names, strict=False):
        wide = table[table["metric"] == name].pivot(index="slice", columns="model", values="value")
        wide = wide.reindex(index=slices, columns=models)  # a missing (empty) slice stays NaN: no bar
        x = np.arange(len(slices))
        for i, model in enumerate(models):
            ax.bar(x + (i - (len(models) - 1) / 2) * width, wide[model].to_numpy(), width, label=model)
        ax.set_xticks(x, labels=slices)
        ax.set(title=f"{name.upper()} (test)")
        ax.grid(axis="y", alpha=0.3)
    if names:
        axes[0].legend(fontsize="small")
    return fig


def codebook_usage_figure(codes: dict[str, np.ndarray]) -> Figure:
    """One panel per tokenizer: per level, code frequencies sorted high to low (flat = balanced codebook)."""
    fig, axes = _figure(len(codes))
    for ax, (name, c) in zip(axes, codes.items(), strict=False):
        sem = c[1:, :-1]  # drop the padding row and the collision level
        for level in range(sem.shape[1]):
            counts = np.sort(np.bincount(sem[:, level]))[::-1]
            ax.plot(np.arange(1, len(counts) + 1), counts, label=f"level {level + 1}")
        ax.set_yscale("log")
        ax.set(title=f"{name}: items per code", xlabel="code rank", ylabel="items")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    top = max((np.bincount(c[1:, level]).max() for c in codes.values() for level in range(c.shape[1] - 1)),
              default=1)
    for ax in axes:  # one y range: panels compare tokenizers
        ax.set_ylim(0.8, top * 1.3)
    return fig
