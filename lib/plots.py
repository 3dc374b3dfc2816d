"""The report's figures, drawn from the small tables lib/report builds.

Figures are built on the Agg canvas directly (no pyplot): no global figure registry to leak or close,
and no display needed on a headless runner. Legibility rules (issue 29): at most 8 series per panel
(the report picks them), each series its own colour *and* marker/hatch so it survives greyscale and
colour-blind readers, and the legend below the panels so it never covers data.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

MAX_SERIES = 8
COLORS = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#000000", "#F0E442")  # Okabe-Ito
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
HATCHES = ("", "//", "..", "xx", "\\\\", "oo", "--", "++")


def _figure(n_panels: int, ncols: int | None = None, width: float = 4.6, height: float = 3.4
            ) -> tuple[Figure, np.ndarray]:
    n = max(n_panels, 1)
    cols = min(n, ncols or n)
    rows = -(-n // cols)
    fig = Figure(figsize=(width * cols, height * rows + 0.9), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax in axes[n:]:
        ax.set_visible(False)
    return fig, axes[:n]


def _legend_below(fig: Figure, ax, n: int) -> None:
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncol=min(max(n, 1), 4), fontsize="small",
                   frameon=False)


def _check(names: list) -> None:
    if len(names) > MAX_SERIES:
        raise ValueError(f"{len(names)} series in one figure: at most {MAX_SERIES} stay legible")


def at_k_figure(table: pd.DataFrame) -> Figure:
    """(model, k, metric, value) -> one panel per metric (NDCG, HR), one line per model, K on a log axis."""
    metrics = [m for m in ("ndcg", "hr") if m in set(table["metric"])]
    models = list(dict.fromkeys(table["model"]))
    _check(models)
    fig, axes = _figure(len(metrics))
    for ax, metric in zip(axes, metrics, strict=False):
        sub = table[table["metric"] == metric]
        for i, model in enumerate(models):
            g = sub[sub["model"] == model].sort_values("k")
            ax.plot(g["k"], g["value"], marker=MARKERS[i], color=COLORS[i], label=model, lw=1.6, ms=5)
        ks = sorted(sub["k"].unique())
        ax.set_xscale("log")
        ax.minorticks_off()
        ax.set_xticks(ks, labels=[str(k) for k in ks])
        ax.set(title=f"{metric.upper()}@K (test)", xlabel="K")
        ax.grid(alpha=0.3)
    if metrics:
        _legend_below(fig, axes[0], len(models))
    return fig


def cold_warm_figure(table: pd.DataFrame) -> Figure:
    """(model, slice, value) -> grouped bars: one group per slice, one hatched colour per model."""
    slices = list(dict.fromkeys(table["slice"]))
    models = list(dict.fromkeys(table["model"]))
    _check(models)
    fig, axes = _figure(1, width=max(5.0, 1.1 * len(slices) * max(len(models), 2) / 2))
    ax = axes[0]
    wide = table.pivot(index="slice", columns="model", values="value").reindex(index=slices, columns=models)
    width = 0.8 / max(len(models), 1)
    x = np.arange(len(slices))
    for i, model in enumerate(models):
        ax.bar(x + (i - (len(models) - 1) / 2) * width, wide[model].to_numpy(dtype=float), width, label=model,
               color=COLORS[i], hatch=HATCHES[i], edgecolor="white", linewidth=0.5)
    ax.set_xticks(x, labels=slices)
    ax.set(title="HR@10 by target (test)", ylabel="HR@10")
    ax.grid(axis="y", alpha=0.3)
    _legend_below(fig, ax, len(models))
    return fig


def codebook_usage_figure(usage: dict[str, pd.DataFrame], max_levels: int = 4) -> Figure:
    """One panel per tokenizer (4 per row): per level, items per code sorted high to low (flat = balanced).

    usage: tokenizer -> (level, rank, items) as the tokenizer stage writes it (lib.tokenizers.codes.code_usage);
    long codes show their first `max_levels` levels (the panel title says how many there are).
    """
    _check(list(usage))
    fig, axes = _figure(len(usage), ncols=4, width=3.8, height=3.0)
    for ax, (name, u) in zip(axes, usage.items(), strict=False):
        levels = sorted(u["level"].unique())
        for i, level in enumerate(levels[:max_levels]):
            g = u[u["level"] == level]
            ax.plot(g["rank"], g["items"], color=COLORS[i], ls=("-", "--", ":", "-.")[i], label=f"level {level}")
        more = f" (levels 1-{max_levels} of {len(levels)})" if len(levels) > max_levels else ""
        ax.set_yscale("log")
        ax.set(title=f"{name}{more}", xlabel="code rank", ylabel="items per code")
        ax.title.set_fontsize("small")
        ax.grid(alpha=0.3)
    top = max((int(u["items"].max()) for u in usage.values() if len(u)), default=1)
    for ax in axes:  # one y range: panels compare tokenizers
        ax.set_ylim(0.8, top * 1.3)
    if usage:
        widest = max(axes, key=lambda ax: len(ax.get_lines()))  # the legend of the panel with the most levels
        _legend_below(fig, widest, len(widest.get_lines()))
    return fig


def curves_figure(curves: dict[str, pd.DataFrame], title: str, ylabel: str) -> Figure:
    """run -> (step, value) -> one line per run (training curves logged by dvclive)."""
    _check(list(curves))
    fig, axes = _figure(1, width=6.0)
    ax = axes[0]
    for i, (name, c) in enumerate(curves.items()):
        ax.plot(c["step"] + 1, c["value"], label=name, color=COLORS[i], marker=MARKERS[i], ms=3,
                markevery=max(1, len(c) // 8))
    ax.set(title=title, xlabel="epoch", ylabel=ylabel)
    ax.grid(alpha=0.3)
    _legend_below(fig, ax, len(curves))
    return fig


def figure(kind: str, name: str, data):
    """The report's figure of `kind` (lib/report: at_k, cold_warm, curves, codebook_usage) named `name`."""
    if kind == "at_k":
        return at_k_figure(data)
    if kind == "cold_warm":
        return cold_warm_figure(data)
    if kind == "curves":
        return curves_figure(data, f"Validation NDCG@10 ({name.removeprefix('val_curves_')})", "NDCG@10")
    return codebook_usage_figure(data)
