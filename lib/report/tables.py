"""Markdown tables: cell format, the leaderboard's metric table, paired tests, representation grid,
generators, cold-start control, published figures, tokenizers and training cost."""
from __future__ import annotations

import numpy as np

from lib.report.config import ReportConfig
from lib.report.models import COLD, FAMILY_ORDER, KEY, VAL_KEY, Models, ReportInputs


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


def rel_change(new: float, old: float) -> str:
    """`new` relative to `old` as a signed percentage."""
    return f"{(new - old) / old:+.0%}" if old else "n/a (baseline is 0)"


def quoted(names) -> str:
    """Names as a comma-separated list of code spans."""
    return ", ".join(f"`{r}`" for r in names)


def label(model: str, models: Models, marks: dict[str, str] | None = None) -> str:
    """A model's row name: its seed count when it has several, and its role (baseline, cold baseline)."""
    n = models.n_seeds(model)
    return model + (f" ({n} seeds)" if n > 1 else "") + (f" ({marks[model]})" if model in (marks or {}) else "")


def metric_table(names: list[str], models: Models, comparisons: dict, cols: list[str], marks: dict[str, str],
                 describe: bool = True) -> list[str]:
    """One row per model, a column per flat metric key: mean over seeds (± sd with several); best mean per column
    in bold, † where the paired test of that key is significant."""
    ev = models.evals
    best = {c: max((ev[r][c] for r in names if c in ev[r]), default=None) for c in cols}
    head = ["run", "family", "representation"] if describe else ["run"]
    head += [("cold " if "cold_target/" in c else "warm " if "warm_target/" in c else "")
             + c.rsplit("/", 1)[1].upper() for c in cols]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---|" * (len(head) - len(cols) - 1) + "---:|" * len(cols)]
    for r in names:
        cells = []
        for c in cols:
            if c not in ev[r]:
                cells.append("–")
                continue
            cell = f"{ev[r][c]:.4f}"
            cell = f"**{cell}**" if ev[r][c] == best[c] else cell
            cell += f" ± {models.sd[r][c]:.4f}" if c in models.sd.get(r, {}) else ""
            cells.append(cell + ("†" if comparisons.get(r, {}).get(c, {}).get("significant") else ""))
        info = models.runs[r]
        name = label(r, models, marks)
        lines.append("| " + " | ".join(([name, info["family"], representation(info)] if describe else [name]) + cells)
                     + " |")
    return lines


def comparison_rows(comparisons: dict) -> list[str]:
    """Every paired test of a protocol: what against what, the means, the difference, its CI, raw and Holm p."""
    rows = [[run, key, t["against"], t["baseline"], t["model"], f"{t['diff']:+.4f}",
             f"[{t['ci_low']:+.4f}, {t['ci_high']:+.4f}]", f"{t['p_value']:.2g}", f"{t['p_holm']:.2g}",
             "yes" if t["significant"] else "no"]
            for run, tests in comparisons.items() for key, t in tests.items()]
    return table(["run", "metric", "against", "against's mean", "run's mean", "diff", "CI", "p (Wilcoxon)",
                  "p (Holm)", "significant"], rows)


def representation(info: dict) -> str:
    """A run's item representation, with its tokenizer for code representations and its item vectors for a
    content run on other vectors than data/embed (run.json `vectors`): `sid_unigram (opq)`, `content [title]`."""
    return (info["representation"] + (f" ({info['tokenizer']})" if info.get("tokenizer") else "")
            + (f" [{info['vectors']}]" if info.get("vectors") else ""))


def representation_grid(names: list[str], models: Models) -> list[str]:
    """Representation x backbone of the ranker families, NDCG@10 and cold HR@10 on test (means over seeds).

    A row is a representation with its tokenizer (codes of another tokenizer are another representation); a
    cell shows the model with the section's own params (no `set` overrides); variants of it (another loss,
    ...) are in the leaderboard only. Without such a model, the first by name.
    """
    cell: dict[tuple[str, str], str] = {}
    for r in sorted(names, key=lambda r: (bool(models.runs[r].get("overrides")), r), reverse=True):  # best last
        if not models.runs[r]["family"].endswith("generators"):
            cell[(representation(models.runs[r]), models.runs[r]["backbone"])] = r
    backbones = sorted({b for _, b in cell})
    # ties by name: a set's order follows the per-process hash seed, and the report must not change with it
    reps = sorted({rep for rep, _ in cell},
                  key=lambda rep: (-max(models.evals[cell[(rep, b)]][KEY] for b in backbones if (rep, b) in cell), rep))
    rows = [[rep] + [models.evals[cell[(rep, b)]].get(k) if (rep, b) in cell else None
                     for b in backbones for k in (KEY, COLD)] for rep in reps]
    return table(["representation", *(f"{b} {n}" for b in backbones for n in ("NDCG@10", "cold HR@10"))], rows)


DEFAULT_VECTORS = "embed"  # what a content run without `vectors` reads: data/embed (params `embed`)


def content_rows(names: list[str], models: Models) -> list[str]:
    """Content runs by the item vectors they read (data/embed or data/vectors/<name>) on test: NDCG@10 and
    cold HR@10, each against the run of the same backbone and representation on data/embed, then one
    sentence per backbone and representation naming the vectors chosen on *validation* NDCG@10 (rows are
    in that order). Runs with `set` overrides are left out (variants, in the leaderboard only); [] when no
    run reads other vectors."""
    runs = [r for r in names if models.runs[r]["family"] == "content_rankers" and not models.runs[r].get("overrides")]
    if not any(models.runs[r].get("vectors") for r in runs):
        return []
    ev = models.evals
    shape = {r: (models.runs[r]["backbone"], models.runs[r]["representation"]) for r in runs}
    vectors = {r: models.runs[r].get("vectors") or DEFAULT_VECTORS for r in runs}
    base = {shape[r]: r for r in sorted(runs, reverse=True) if not models.runs[r].get("vectors")}  # first by name

    def vs(r: str, key: str) -> str:
        b = base.get(shape[r])
        if b is None or b == r or ev[r].get(key) is None or ev[b].get(key) is None:
            return "–"
        return rel_change(ev[r][key], ev[b][key])

    ordered_runs = sorted(runs, key=lambda r: (shape[r], -ev[r].get(VAL_KEY, -1.0), r))  # best on validation first
    rows = [[f"{shape[r][0]} {shape[r][1]}", vectors[r], f"`{r}`", ev[r].get(VAL_KEY), ev[r].get(KEY), vs(r, KEY),
             ev[r].get(COLD), vs(r, COLD)] for r in ordered_runs]
    best = {}
    for r in ordered_runs:
        best.setdefault(shape[r], r)
    lines = [f"- {b} {rep}: chosen on validation `{vectors[r]}` (`{r}`, val NDCG@10 {fmt(ev[r].get(VAL_KEY))}; "
             f"test {fmt(ev[r].get(KEY))}" + (f", {vs(r, KEY)} vs `{DEFAULT_VECTORS}`)" if vs(r, KEY) != "–" else ")")
             for (b, rep), r in best.items() if sum(shape[x] == (b, rep) for x in runs) > 1]
    return table(["backbone, representation", "vectors", "run", "val NDCG@10", "NDCG@10", f"vs {DEFAULT_VECTORS}",
                  "cold HR@10", f"vs {DEFAULT_VECTORS}"], rows) + ([""] + lines if lines else [])


GENERATOR_KINDS = {"generators": "TIGER-style (beam search)", "parallel_generators": "RPG (parallel digits, exact)"}


def generator_grid(names: list[str], models: Models) -> list[str]:
    """Tokenizer method x generator family on test: NDCG@10, cold HR@10 and the tokenizer's code shape.

    Rows are the tokenizer methods (training metrics' `method`), so TIGER's 3-level residual k-means and
    RPG's 32-digit one share a row. Among the runs of a cell without `set` overrides (variants are in the
    leaderboard only), the best on *validation* NDCG@10 is shown, with its tokenizer named; a cell that
    has only runs with overrides (RPG on codes without centroids needs `model.digit_init: random`) shows
    the best of those, its overrides named next to the codes.
    """
    cell: dict[tuple[str, str], str] = {}

    def rank(r: str) -> tuple:  # override-free first, then validation; ties by name: never by the run order
        return (not models.runs[r].get("overrides"), models.evals[r].get(VAL_KEY, 0), r)

    for r in names:
        info, method = models.runs[r], models.train.get(r, {}).get("method")
        if info["family"] not in GENERATOR_KINDS or method is None:
            continue
        key = (method, info["family"])
        if key not in cell or rank(r) > rank(cell[key]):
            cell[key] = r
    if not cell:
        return ["No generator with a known tokenizer method in this protocol."]
    fams = [f for f in GENERATOR_KINDS if any(k[1] == f for k in cell)]
    methods = sorted({m for m, _ in cell}, key=lambda m: (-max(models.evals[cell[(m, f)]][KEY] for f in fams
                                                               if (m, f) in cell), m))

    def shape(r: str) -> str:
        t, tok = models.train[r], models.runs[r]["tokenizer"]
        sets = models.runs[r].get("overrides")
        note = f" (set {', '.join(f'{k}={v}' for k, v in sorted(sets.items()))})" if sets else ""
        if "digits" in t:  # RPG: m parallel digits
            return f"{tok}: {t['digits']} x {t['codebook_size']}{note}"
        return f"{tok}: {int(t['n_levels']) - 1} levels + collision{note}"  # n_levels counts the collision level

    rows = [[m] + [v for f in fams for v in ((models.evals[cell[(m, f)]][KEY], models.evals[cell[(m, f)]].get(COLD),
                                              shape(cell[(m, f)])) if (m, f) in cell else (None, None, None))]
            for m in methods]
    return table(["tokenizer method", *(f"{GENERATOR_KINDS[f]} {n}" for f in fams
                                        for n in ("NDCG@10", "cold HR@10", "codes"))], rows)


def generator_rows(names: list[str], models: Models) -> list[str]:
    """Per generator: how often the target's first l codes are in the top 10, and decoding facts."""
    gens = [r for r in names if models.runs[r]["family"] == "generators" and r in models.train]
    if not gens:
        return ["No Semantic-ID generator in this protocol."]
    levels = max(int(models.runs[r].get("n_levels") or 0) for r in gens)
    head = (["run", "tokenizer"] + [f"prefix HR@10, {i} code{'s' * (i > 1)}" for i in range(1, levels + 1)]
            + ["invalid IDs", "users/s (test)", "NDCG@10"])
    tr = models.train
    rows = [[r, models.runs[r]["tokenizer"]]
            + [tr[r].get(f"test/prefix_hr@10/codes{i}") for i in range(1, levels + 1)]
            + [tr[r].get("test/invalid_id_rate"), tr[r].get("test/users_per_second"), models.evals[r][KEY]]
            for r in sorted(gens, key=lambda r: (-models.evals[r][KEY], r))]
    return table(head, rows)


def _lift(model: float | None, control: float | None) -> str:
    return f"{model / control:.2f}x" if model is not None and control else "–"


def control_table(pool: str, names: list[str], models: Models, comp: dict, cfg: ReportConfig) -> list[str]:
    """One row per model: cold slots, reachable targets, its metric on them, the control's, lift; † = the
    paired test vs the control is significant."""
    pre = f"test/cold_pool/{pool}"
    k = cfg.significance_metrics[0].split("@")[1]
    head = ["run", f"cold slots in top {k}", "reachable targets"]
    for m in cfg.significance_metrics:
        head += [m.upper(), f"control {m.upper()}", f"lift {m.upper()}"]
    rows = []
    for r in names:
        ev = models.evals[r]
        cells: list = [label(r, models), ev.get(f"{pre}/cold_slots@{k}"), ev.get(f"{pre}/targets")]
        for m in cfg.significance_metrics:
            model, control = ev.get(f"{pre}/model/{m}"), ev.get(f"{pre}/control/{m}")
            dagger = "†" if comp.get(r, {}).get(f"{pre}/{m}", {}).get("significant") else ""
            cells += [fmt(model) + dagger if model is not None else None, control, _lift(model, control)]
        rows.append(cells)
    return table(head, rows)


def published_rows(names: list[str], models: Models, published: list[dict]) -> list[str]:
    """Our models next to published figures of the same protocol (other code and item text: not tested)."""
    rows = [[f"`{r}` (this study)", models.evals[r].get("test/hr@10"), models.evals[r].get(KEY), "committed run"]
            for r in sorted(names, key=lambda r: -models.evals[r][KEY])]
    rows += [[p.get("model"), p.get("hr@10"), p.get("ndcg@10"), p.get("source")] for p in published]
    return table(["model", "HR@10 (= Recall@10)", "NDCG@10", "source"], rows)


def tokenizer_rows(inp: ReportInputs) -> list[str]:
    """Codebook usage per level (codes used / perplexity), collisions and reconstruction per tokenizer."""
    if not inp.tokenizers:
        return ["No tokenizer metrics."]
    levels = max(int(t.get("levels", 0)) for t in inp.tokenizers.values())
    head = (["tokenizer", "method", "protocol"] + [f"L{i + 1} used / perplexity" for i in range(levels)]
            + ["collision rate", "largest group", "rel. error", "fit s"])
    rows = []
    for name, t in sorted(inp.tokenizers.items(), key=lambda kv: kv[1].get("collision_rate", 1.0)):
        use = [(f"{t[f'level_{i}']['codes_used']} / {t[f'level_{i}']['perplexity']:.0f}"
                if f"level_{i}" in t else None) for i in range(levels)]
        rows.append([name, t.get("method"), t.get("protocol"), *use, t.get("collision_rate"), t.get("largest_group"),
                     t.get("recon_rel", t.get("quant_rel")), t.get("train_seconds", t.get("fit_seconds"))])
    return table(head, rows)


def cost_rows(inp: ReportInputs) -> list[str]:
    """Training cost per run (every seed is a run), grouped by family, slowest first; totals per family."""
    runs = sorted(inp.train, key=lambda r: (FAMILY_ORDER.index(inp.runs[r]["family"])
                                            if r in inp.runs and inp.runs[r]["family"] in FAMILY_ORDER else 9,
                                            -(inp.train[r].get("train_seconds") or 0)))
    head = ["run", "family", "best epoch", "epochs run", "s / epoch", "train s", "peak MB", "parameters"]
    rows = [[r, inp.runs.get(r, {}).get("family"), t.get("best_epoch"), t.get("epochs"), t.get("seconds_per_epoch"),
             t.get("train_seconds"), t.get("peak_memory_mb"), t.get("parameters")]
            for r in runs for t in [inp.train[r]]]
    totals = {}
    for r in runs:
        totals.setdefault(inp.runs.get(r, {}).get("family", "?"), []).append(inp.train[r].get("train_seconds") or 0)
    lines = ", ".join(f"{f} {sum(v) / 60:.0f} min ({len(v)} runs)" for f, v in totals.items())
    return table(head, rows) + ["", f"Training time (early stopping included; decoding, evaluation and tokenizers "
                                    f"not): {lines}; all {len(runs)} runs "
                                    f"{sum(map(sum, totals.values())) / 60:.0f} min."]
