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


def codebook_usage_figure(usage: dict[str, pd.DataFrame]) -> Figure:
    """One panel per tokenizer: per level, items per code sorted high to low (flat = balanced codebook).

    usage: tokenizer -> (level, rank, items) as written by the tokenizer stage (lib.tokenizers.codes.code_usage).
    """
    fig, axes = _figure(len(usage))
    for ax, (name, u) in zip(axes, usage.items(), strict=False):
        for level, g in u.groupby("level"):
            ax.plot(g["rank"], g["items"], label=f"level {level}")
        ax.set_yscale("log")
        ax.set(title=f"{name}: items per code", xlabel="code rank", ylabel="items")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
    top = max((int(u["items"].max()) for u in usage.values() if len(u)), default=1)
    for ax in axes:  # one y range: panels compare tokenizers
        ax.set_ylim(0.8, top * 1.3)
    return fig


def curves_figure(curves: dict[str, pd.DataFrame], title: str, ylabel: str) -> Figure:
    """run -> (step, value) -> one line per run (training curves logged by dvclive)."""
    fig, axes = _figure(1)
    ax = axes[0]
    for name, c in curves.items():
        ax.plot(c["step"] + 1, c["value"], label=name)
    ax.set(title=title, xlabel="epoch", ylabel=ylabel)
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize="x-small", ncol=2)
    return fig
