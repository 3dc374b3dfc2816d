"""reports/RESULTS.md: the study's write-up, rendered from metrics only (never typed by hand).

Inputs are what the pipeline already wrote: the evaluator's metrics and paired tests, each
training stage's facts (metrics/train/<model>.json: epochs, time, memory, Semantic-ID prefix
hit rates) and each tokenizer's diagnostics (metrics/rqvae.json, metrics/tokenizers/<name>.json)
with its codes (for the codebook-usage figure). Every sentence with a number is computed here.

Model names follow the stages: `<backbone>_<representation>` for the ID/content recommenders,
`gpt2_sid` for the generator over the main tokenizer (named `rqvae` below) and
`gpt2_sid_<name>` for the generator over tokenizer ablation `<name>`.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from lib.evaluate import EvaluateConfig, leaderboard_columns, metric_table, significance_note

MAIN_TOKENIZER = "rqvae"  # the `rqvae` stage's codes feed gpt2_sid and every Semantic-ID representation
GENERATOR = "gpt2_sid"
REPRESENTATION_ORDER = ("id", "content_init", "content", "content_plus_id", "sid_unigram", "sid_bigram",
                        "sid_plus_id")  # table order; others follow
GRID_METRICS = {"test/ndcg@10": "NDCG@10", "test/cold_target/hr@10": "cold HR@10"}


@dataclass
class ReportInputs:
    leaderboard: dict  # the evaluator's JSON: baseline, models {model: flat metrics}, comparisons
    train: dict[str, dict] = field(default_factory=dict)  # model -> its training stage's metrics
    tokenizers: dict[str, dict] = field(default_factory=dict)  # tokenizer name -> its stage's metrics
    codes: dict[str, np.ndarray] = field(default_factory=dict)  # tokenizer name -> codes (N+1, levels+1)


def tokenizer_of(model: str) -> str | None:
    """gpt2_sid -> the main tokenizer; gpt2_sid_<name> -> <name>; other models -> None.

    `gpt2_sid_unigram` etc. are GPT-2 with a Semantic-ID *representation* (`gpt2_` + `sid_unigram`), not
    generators: a name `gpt2_<representation>` with a representation of REPRESENTATION_ORDER wins.
    """
    if model == GENERATOR:
        return MAIN_TOKENIZER
    if model.startswith(GENERATOR + "_") and model.split("_", 1)[1] not in REPRESENTATION_ORDER:
        return model[len(GENERATOR) + 1:]
    return None


def _fmt(x) -> str:
    """Table cell: metrics with 4 decimals, tiny errors in e-notation, seconds/MB with few digits."""
    if x is None:
        return "–"
    if not isinstance(x, float):
        return str(x)
    a = abs(x)
    return (f"{x:.0f}" if a >= 100 else f"{x:.1f}" if a >= 10 else f"{x:.2f}" if a >= 1
            else f"{x:.4f}" if a >= 1e-3 or a == 0 else f"{x:.2e}")


def _table(head: list[str], rows: list[list]) -> list[str]:
    return (["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
            + ["| " + " | ".join(_fmt(c) for c in r) + " |" for r in rows])


def _rel(new: float, old: float) -> str:
    return f"{(new - old) / old:+.0%}" if old else "n/a (baseline is 0)"


def _sig(comparisons: dict, model: str, key: str) -> str:
    r = comparisons.get(model, {}).get(key)
    if r is None:
        return "not tested"
    return (f"{'significant' if r['significant'] else 'not significant'}: diff {r['diff']:+.4f}, "
            f"CI [{r['ci_low']:+.4f}, {r['ci_high']:+.4f}], p = {r['p_value']:.2g}")


def summary(inp: ReportInputs, cfg: EvaluateConfig) -> list[str]:
    """A few computed sentences: what works best overall, on cold targets, and among tokenizers."""
    models, comp, base = inp.leaderboard["models"], inp.leaderboard.get("comparisons", {}), cfg.baseline
    key, cold = "test/ndcg@10", "test/cold_target/hr@10"
    out = []
    best = max(models, key=lambda m: models[m][key])
    b = models[best]
    line = f"- **Best overall (test NDCG@10): `{best}`** {b[key]:.4f}, HR@10 {b['test/hr@10']:.4f}"
    if best != base and base in models:
        line += f"; vs `{base}` {models[base][key]:.4f} ({_rel(b[key], models[base][key])}, {_sig(comp, best, key)})"
    out.append(line + ".")
    with_cold = [m for m in models if cold in models[m]]
    if with_cold:
        bc = max(with_cold, key=lambda m: models[m][cold])
        line = (f"- **Best on cold targets (test items without a training interaction, "
                f"{models[bc].get('test/cold_target/users', '?')} users; HR@10): `{bc}`** {models[bc][cold]:.4f}")
        if bc != base and base in models:
            line += f" vs `{base}` {models[base][cold]:.4f} ({_sig(comp, bc, cold)})"
        out.append(line + ".")
    for backbone in ("sasrec", "gpt2"):
        ident = f"{backbone}_id"
        others = [m for m in models if m.startswith(backbone + "_") and m != ident and tokenizer_of(m) is None]
        if ident in models and others:
            bo = max(others, key=lambda m: models[m][key])
            out.append(f"- {backbone}: best item representation `{bo[len(backbone) + 1:]}` NDCG@10 "
                       f"{models[bo][key]:.4f} vs ID-only {models[ident][key]:.4f} "
                       f"({_rel(models[bo][key], models[ident][key])}).")
    sid = [m for m in models if tokenizer_of(m) is not None]
    if sid:
        bs = max(sid, key=lambda m: models[m][key])
        out.append(f"- Semantic-ID generator: best tokenizer `{tokenizer_of(bs)}` (NDCG@10 {models[bs][key]:.4f}, "
                   f"cold HR@10 {_fmt(models[bs].get(cold))}); "
                   + ", ".join(f"`{tokenizer_of(m)}` {models[m][key]:.4f}" for m in sorted(sid) if m != bs) + ".")
    return out


def cold_warm_rows(models: dict, comparisons: dict, cfg: EvaluateConfig) -> list[str]:
    cols = [f"test/{s}/{m}" for s in ("warm_target", "cold_target") for m in cfg.significance_metrics]
    return metric_table(models, comparisons, cols, cfg.baseline)


def generator_rows(inp: ReportInputs) -> list[str]:
    """Per Semantic-ID generator: how often the target's first l codes are in the top 10, and decoding facts."""
    sid = sorted(m for m in inp.train if tokenizer_of(m) is not None)
    if not sid:
        return ["No Semantic-ID generator was trained."]
    levels = max(int(inp.train[m].get("n_levels", 0)) for m in sid)
    head = (["model", "tokenizer"] + [f"prefix HR@10, {i} code{'s' * (i > 1)}" for i in range(1, levels + 1)]
            + ["invalid IDs", "users/s (test)", "best epoch", "train s"])
    rows = []
    for m in sid:
        t = inp.train[m]
        rows.append([m, tokenizer_of(m)] + [t.get(f"test/prefix_hr@10/codes{i}") for i in range(1, levels + 1)]
                    + [t.get("test/invalid_id_rate"), t.get("test/users_per_second"), t.get("best_epoch"),
                       t.get("train_seconds")])
    return _table(head, rows)


def tokenizer_rows(inp: ReportInputs) -> list[str]:
    """Codebook usage per level (codes used / perplexity), collisions and reconstruction per tokenizer."""
    if not inp.tokenizers:
        return ["No tokenizer metrics."]
    levels = max(sum(k.startswith("level_") for k in t) for t in inp.tokenizers.values())
    head = (["tokenizer", "method"] + [f"L{i + 1} used / perplexity" for i in range(levels)]
            + ["collision rate", "largest group", "rel. error", "fit s"])
    rows = []
    for name, t in inp.tokenizers.items():
        method = t.get("method", name if name != MAIN_TOKENIZER else "rqvae")
        use = [(f"{t[f'level_{i}']['codes_used']} / {t[f'level_{i}']['perplexity']:.0f}"
                if f"level_{i}" in t else None) for i in range(levels)]
        rows.append([name, method, *use, t.get("collision_rate"), t.get("largest_group"),
                     t.get("recon_rel", t.get("quant_rel")), t.get("train_seconds", t.get("fit_seconds"))])
    return _table(head, rows)


def cost_rows(inp: ReportInputs) -> list[str]:
    head = ["model", "best epoch", "epochs run", "s / epoch", "train s", "peak MB", "parameters"]
    rows = [[m, t.get("best_epoch"), t.get("epochs"), t.get("seconds_per_epoch"), t.get("train_seconds"),
             t.get("peak_memory_mb"), t.get("parameters")] for m, t in sorted(inp.train.items())]
    total = sum(t.get("train_seconds") or 0 for t in inp.train.values())
    return _table(head, rows) + ["", f"Training time of all {len(rows)} models: {total / 60:.0f} min "
                                     "(early stopping included; decoding and tokenizers not)."]


def representation_grid(models: dict, metrics: dict[str, str] = GRID_METRICS) -> list[str]:
    """Representation x (backbone, metric) pivot for the ID/content/Semantic-ID recommenders."""
    backbones = ("sasrec", "gpt2")
    found = {m.split("_", 1)[1] for m in models
             if "_" in m and m.split("_", 1)[0] in backbones and tokenizer_of(m) is None}
    reps = [r for r in REPRESENTATION_ORDER if r in found] + sorted(found - set(REPRESENTATION_ORDER))
    rows = [[r] + [models.get(f"{b}_{r}", {}).get(k) for b in backbones for k in metrics] for r in reps]
    return _table(["representation", *(f"{b} {name}" for b in backbones for name in metrics.values())], rows)


def render(inp: ReportInputs, cfg: EvaluateConfig, figures: dict[str, str]) -> str:
    """The whole RESULTS.md; `figures` maps figure name -> path relative to the report."""
    models, comp = inp.leaderboard["models"], inp.leaderboard.get("comparisons", {})
    users = next(iter(models.values()), {}).get("test/users", 0)
    cold_users = next(iter(models.values()), {}).get("test/cold_target/users", 0)
    fig = {k: f"![{k}]({v})" for k, v in figures.items()}
    out = [
        "# Results", "",
        "Rendered by the `evaluate` stage from `metrics/` (do not edit by hand; `dvc repro` rewrites it).",
        f"Test: {users} users, one target each (global temporal split), full-catalogue ranking, seen items "
        f"{'removed' if cfg.filter_seen else 'kept'}; {cold_users} targets are cold (no training interaction).", "",
        "## What works best", "", *summary(inp, cfg), "",
        "## Leaderboard (test, all models)", "",
        *metric_table(models, comp, leaderboard_columns(cfg), cfg.baseline), "", significance_note(cfg), "",
        fig.get("metrics_vs_k", ""), "",
        "## Item representation x backbone (test)", "", *representation_grid(models), "",
        "## Cold vs warm targets (test)", "", *cold_warm_rows(models, comp, cfg), "",
        fig.get("cold_warm", ""), "",
        "## Semantic-ID generator: per-level prefix hit rates (test)", "",
        "Share of test users whose target's first l codes equal those of one of the top-10 generated items.", "",
        *generator_rows(inp), "",
        "## Tokenizers: codebook usage and collisions", "",
        f"`{MAIN_TOKENIZER}` is the `rqvae` stage (feeds `{GENERATOR}` and every Semantic-ID representation); "
        "the others are the `tokenizer@<name>` ablations (params `variants.tokenizers`). Perplexity = exp(entropy) "
        "of a level's code distribution over all items (max = codebook size). Rel. error = squared error "
        "over the embeddings' variance: the RQ-VAE's reconstruction, residual k-means' quantisation.", "",
        *tokenizer_rows(inp), "", fig.get("codebook_usage", ""), "",
        "## Training cost", "", *cost_rows(inp), "",
    ]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).rstrip("\n") + "\n"  # a missing figure leaves no gap
