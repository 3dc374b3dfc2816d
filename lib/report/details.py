"""The appendix's detail tables: item vectors of content runs, generators' prefix hits, the tokenizers,
published figures, training cost and the rule runs' note.

Each takes the scope's models (rule runs excluded unless named) and returns markdown lines, [] when it has
nothing to show, so an appendix holds only the tables its runs fill.
"""
from __future__ import annotations

from lib.report.config import ReportConfig
from lib.report.models import VAL_KEY, Models
from lib.report.scopes import Scope, by_validation, matches, rules_of
from lib.report.tables import DEFAULT_VECTORS, fmt, mean_sd_cell, other_vectors, rel_change, representation, table

MAX_LEVELS_SHOWN = 3  # long codes (32 digits) summarised by their first levels and the spread over all


def content_rows(names: list[str], models: Models) -> list[str]:
    """Content runs by the item vectors they read, against the run of the same backbone and representation on
    the default vectors; [] when no run reads other vectors. Rows best on validation first within a shape."""
    runs = [r for r in names if models.runs[r]["family"] == "content_rankers" and not models.runs[r].get("overrides")]
    if not any(other_vectors(models.runs[r]) for r in runs):
        return []
    shape = {r: (models.runs[r]["backbone"], models.runs[r]["representation"]) for r in runs}
    base = {shape[r]: r for r in sorted(runs, reverse=True) if not other_vectors(models.runs[r])}
    rows = []
    for r in sorted(by_validation(runs, models), key=lambda r: shape[r]):
        b, nd = base.get(shape[r]), models.mean_sd(r, "test/ndcg@10")[0]
        vs = rel_change(nd, models.mean_sd(b, "test/ndcg@10")[0]) if b and b != r else "–"
        rows.append([" · ".join(shape[r]), other_vectors(models.runs[r]) or DEFAULT_VECTORS, f"`{r}`",
                     models.evals[r].get(VAL_KEY), nd, vs, models.mean_sd(r, "cold/hr@10")[0]])
    return table(["backbone · representation", "vectors", "model", "val NDCG@10", "test NDCG@10",
                  f"vs {DEFAULT_VECTORS}", "cold HR@10"], rows)


def generator_rows(names: list[str], models: Models) -> list[str]:
    """Per Semantic-ID generator: how often the target's first l codes are in the top 10, invalid IDs, speed."""
    gens = [r for r in names if models.runs[r]["family"] == "generators" and r in models.train]
    if not gens:
        return []
    levels = max(int(models.runs[r].get("n_levels") or 0) for r in gens)
    tr = models.train
    rows = [[f"`{r}`", models.runs[r].get("tokenizer")] + [tr[r].get(f"test/prefix_hr@10/codes{i}")
                                                          for i in range(1, levels + 1)]
            + [tr[r].get("test/invalid_id_rate"), tr[r].get("test/users_per_second"), models.evals[r].get(VAL_KEY)]
            for r in by_validation(gens, models)]
    return table(["model", "tokenizer", *(f"prefix HR@10, {i} code{'s' * (i > 1)}" for i in range(1, levels + 1)),
                  "invalid IDs", "users/s (test)", "val NDCG@10"], rows)


def tokenizer_rows(names: list[str], models: Models, tokenizers: dict[str, dict]) -> list[str]:
    """The tokenizers the scope's models read: code usage, collisions, reconstruction; long codes summarised."""
    used = sorted({models.runs[r]["tokenizer"] for r in names if models.runs[r].get("tokenizer")} & set(tokenizers))
    if not used:
        return []
    rows = []
    for name in used:
        t = tokenizers[name]
        levels = [t[k] for k in sorted((k for k in t if k.startswith("level_")), key=lambda k: int(k[6:]))]
        ppl = [lv.get("perplexity") for lv in levels if lv.get("perplexity") is not None]
        first = " · ".join(f"{lv.get('codes_used')}/{lv.get('perplexity', 0):.0f}" for lv in levels[:MAX_LEVELS_SHOWN])
        rows.append([name, t.get("method"), t.get("protocol"), len(levels), first,
                     f"{min(ppl):.0f}–{max(ppl):.0f}" if ppl else None, t.get("collision_rate"),
                     t.get("largest_group"), t.get("recon_rel", t.get("quant_rel")),
                     t.get("train_seconds", t.get("fit_seconds"))])
    return ["Per level: codes used / perplexity (exp of the code distribution's entropy; max = codebook size).", "",
            *table(["tokenizer", "method", "fit on", "levels", f"levels 1-{MAX_LEVELS_SHOWN}: used/perplexity",
                    "perplexity range", "collision rate", "largest group", "rel. error", "fit s"], rows)]


def published_rows(scope: Scope, names: list[str], models: Models, cfg: ReportConfig) -> list[str]:
    """Published figures declared comparable with this scope, beside our model of the same kind (`like`), the
    one best on validation; other code and item text: not tested."""
    pubs = [p for p in cfg.published if scope.name in p["scopes"]]
    if not pubs:
        return []
    rows = []
    for p in pubs:
        ours = by_validation([m for m in names if p.get("like") and matches(models.runs[m], p["like"])], models)
        m = ours[0] if ours else None
        rows.append([p["model"], p.get("ndcg@10"), p.get("hr@10"), p["source"], f"`{m}`" if m else "–",
                     mean_sd_cell(*models.mean_sd(m, "test/ndcg@10")) if m else "–",
                     mean_sd_cell(*models.mean_sd(m, "test/hr@10")) if m else "–"])
    return table(["published model", "NDCG@10", "HR@10 (= Recall@10)", "source", "ours (best on validation)",
                  "our NDCG@10", "our HR@10"], rows)


def cost_rows(names: list[str], models: Models, train: dict[str, dict]) -> list[str]:
    """Training cost per run (every seed is a run), slowest first; the total."""
    runs = sorted((r for m in names for r in models.members[m] if r in train),
                  key=lambda r: -(train[r].get("train_seconds") or 0))
    if not runs:
        return []
    rows = [[f"`{r}`", t.get("best_epoch"), t.get("epochs"), t.get("seconds_per_epoch"), t.get("train_seconds"),
             t.get("peak_memory_mb"), t.get("parameters")] for r in runs for t in [train[r]]]
    total = sum(train[r].get("train_seconds") or 0 for r in runs) / 60
    return table(["run", "best epoch", "epochs run", "s / epoch", "train s", "peak MB", "parameters"], rows) + [
        "", f"Training time of these {len(runs)} runs (early stopping included; decoding, evaluation and tokenizers "
            f"not): {fmt(total)} min."]


def rule_notes(ruled: list[str], models: Models) -> list[str]:
    """One bullet per rule run: its rules, validation and test figures."""
    out = []
    for m in by_validation(ruled, models):
        rules = ", ".join(rules_of(models.runs[m], models.train.get(m)))
        b = models.train.get(m, {}).get("cold_shift")
        out.append(f"- `{m}` ({representation(models.runs[m])}; rules: {rules}"
                   + (f", shift b = {b:g} chosen on validation" if isinstance(b, (int, float)) else "")
                   + f"): val NDCG@10 {fmt(models.evals[m].get(VAL_KEY))}, test NDCG@10 "
                   f"{mean_sd_cell(*models.mean_sd(m, 'test/ndcg@10'))}, cold HR@10 "
                   f"{fmt(models.mean_sd(m, 'cold/hr@10')[0])}.")
    return out
