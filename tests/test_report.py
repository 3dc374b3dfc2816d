"""stages/report.py + lib/report.py: RESULTS.md from committed-style per-run files, end to end on synthetic runs.

The fixture writes what the training, evaluation, tokenizer and split stages commit (run.json, ranks.parquet,
metrics/{eval,train,tokenizers,split}, dvclive curves, code-usage tables) for two protocols; the eval metrics
and per-user ranks come from lib.evaluate.evaluate_run on synthetic lists, so they agree as in the pipeline.
"""
from __future__ import annotations

import importlib
import json
import math
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lib.evaluate import EvaluateConfig, evaluate_run, loaded_ranks
from lib.report import FAMILY_ORDER, ReportConfig, ReportInputs, render
from lib.significance import holm
from tests.conftest import eval_rows, ranked_lists

ROOT = Path(__file__).resolve().parent.parent
STAGES = ROOT / "stages"
N_ITEMS = 50  # items 46..50 are cold (never a training item)
N_TEST, N_VAL = 120, 100
EVAL = EvaluateConfig(ks=(5, 10, 20))
PNG = b"\x89PNG\r\n\x1a\n"
PARAMS = """report:
  baseline: {backbone: sasrec, representation: id}
  significance_metrics: [ndcg@10, hr@10]
  n_bootstrap: 200
  alpha: 0.05
  seed: 0
  published:
    leave_one_out:
      - {model: Paper X, hr@10: 0.0648, ndcg@10: 0.0384, source: "Someone 2023"}
"""
# name -> run.json fields (family, backbone, representation, tokenizer, protocol, n_levels)
RUNS = {
    "sasrec_id": ("rankers", "sasrec", "id", None, "gts", None),
    "gpt2_id": ("rankers", "gpt2", "id", None, "gts", None),
    "sasrec_content_plus_id": ("content_rankers", "sasrec", "content_plus_id", None, "gts", None),
    "gpt2_content": ("content_rankers", "gpt2", "content", None, "gts", None),
    "gpt2_sid": ("generators", "gpt2", "sid", "rqvae", "gts", 3),
    "sasrec_id_loo": ("rankers", "sasrec", "id", None, "loo", None),
    "gpt2_id_loo": ("rankers", "gpt2", "id", None, "loo", None),
}
PROMOTED, DEMOTED = 24, 2  # content_plus_id = baseline + 24 misses put first; gpt2_id = baseline - 2 hits


def _truth(seed: int, n_users: int, first_user: int = 0) -> pd.DataFrame:
    return eval_rows(seed, n_users, first_user, N_ITEMS)


def _recs(truth: pd.DataFrame, seed: int, p_first: float) -> pd.DataFrame:
    return ranked_lists(truth, seed, p_first, N_ITEMS)


def _move(recs: pd.DataFrame, truth: pd.DataFrame, rows: np.ndarray, first: bool) -> pd.DataFrame:
    """The same lists with the target of `rows` moved to the front (rank 1) or the end (a miss at K <= 20)."""
    lists = list(recs["items"])
    for i in rows:
        t, x = truth["target"].iat[i], lists[i]
        lists[i] = np.r_[t, x[x != t]] if first else np.r_[x[x != t], t]
    return recs.assign(items=lists)


def _ranks(truth: pd.DataFrame, recs: pd.DataFrame) -> np.ndarray:
    """(U,) float ranks of one split, inf = miss (what the per-user file stores)."""
    one = {"val": truth, "test": truth}
    ev = evaluate_run(one, {"val": recs, "test": recs}, pd.DataFrame({"item": np.arange(1, N_ITEMS + 1)}), EVAL)
    return loaded_ranks(ev.per_user[ev.per_user["split"] == "test"]["rank"].to_numpy())


def build(root: Path) -> dict:
    """Write the committed-style inputs of the report under `root`; returns the hand-made edits."""
    truth = {"gts": {"val": _truth(1, N_VAL), "test": _truth(2, N_TEST)},
             "loo": {"val": _truth(3, N_VAL, 1000), "test": _truth(4, N_TEST, 1000)}}
    base = {s: _recs(truth["gts"][s], 10 + i, 0.1) for i, s in enumerate(("val", "test"))}
    base_ranks = _ranks(truth["gts"]["test"], base["test"])
    misses = np.flatnonzero(~np.isfinite(base_ranks))[:PROMOTED]
    hits = np.flatnonzero(base_ranks <= 10)[:DEMOTED]
    assert len(misses) == PROMOTED and len(hits) == DEMOTED
    gts, loo = truth["gts"], truth["loo"]
    recs = {
        "sasrec_id": base,
        "gpt2_id": {"val": _recs(gts["val"], 21, 0.15), "test": _move(base["test"], gts["test"], hits, first=False)},
        "sasrec_content_plus_id": {"val": base["val"], "test": _move(base["test"], gts["test"], misses, first=True)},
        "gpt2_content": {"val": _recs(gts["val"], 31, 0.1), "test": _recs(gts["test"], 32, 0.2)},
        "gpt2_sid": {"val": _recs(gts["val"], 41, 0.9), "test": _recs(gts["test"], 42, 0.15)},  # best on val only
        "sasrec_id_loo": {s: _recs(loo[s], 50 + i, 0.3) for i, s in enumerate(("val", "test"))},
        "gpt2_id_loo": {s: _recs(loo[s], 60 + i, 0.35) for i, s in enumerate(("val", "test"))},
    }
    items = pd.DataFrame({"item": np.arange(1, N_ITEMS + 1)})
    for d in ("metrics/eval", "metrics/train", "metrics/tokenizers", "metrics/split", "plots/train"):
        (root / d).mkdir(parents=True)
    for i, (run, (family, backbone, rep, tok, protocol, levels)) in enumerate(RUNS.items()):
        info = {"name": run, "family": family, "backbone": backbone, "representation": rep, "tokenizer": tok,
                "protocol": protocol, "n_levels": levels, "seed": 42, "overrides": {}}
        ev = evaluate_run(truth[protocol], recs[run], items, EVAL, label=run)
        (root / "results" / run).mkdir(parents=True)
        _json(info, root / "results" / run / "run.json")
        ev.per_user.to_parquet(root / "results" / run / "ranks.parquet", index=False)
        _json({"run": run, "protocol": protocol, **ev.metrics}, root / "metrics/eval" / f"{run}.json")
        train = {"best_epoch": 5 + i, "epochs": 13 + i, "seconds_per_epoch": 1.5 + i, "train_seconds": 20.0 * (i + 1),
                 "peak_memory_mb": 300.0 + i, "parameters": 10_000 * (i + 1)}
        if family == "generators":
            train |= {"test/prefix_hr@10/codes1": 0.5, "test/prefix_hr@10/codes2": 0.3,
                      "test/prefix_hr@10/codes3": 0.2, "test/invalid_id_rate": 0.0, "test/users_per_second": 250.0}
        _json(train, root / "metrics/train" / f"{run}.json")
        if run != "gpt2_id_loo":  # a run without curves is drawn without a line, not an error
            curves = root / "plots/train" / run / "plots/metrics"
            (curves / "val").mkdir(parents=True)
            steps = np.arange(4) * 10 + 9
            pd.DataFrame({"timestamp": 1_700_000_000 + steps, "step": steps,
                          "ndcg@10": 0.01 * np.arange(1, 5) + 0.001 * i}).to_csv(curves / "val/ndcg@10.tsv",
                                                                                  sep="\t", index=False)
            pd.DataFrame({"timestamp": 1_700_000_000 + steps, "step": steps, "epoch": np.arange(4)}).to_csv(
                curves / "epoch.tsv", sep="\t", index=False)
    for name, method, collisions in (("rqvae", "rqvae", 0.05), ("random", "random", 0.2)):
        _json({"method": method, "protocol": "gts", "levels": 3, "collision_rate": collisions, "largest_group": 3,
               **{f"level_{lv}": {"codes_used": 8 - lv, "perplexity": 6.4 - lv} for lv in range(3)}},
              root / "metrics/tokenizers" / f"{name}.json")
        usage = pd.DataFrame([(lv, r, 20 - 2 * r) for lv in (1, 2, 3) for r in range(1, 6)],
                             columns=["level", "rank", "items"])
        (root / "plots/tokenizers" / name).mkdir(parents=True)
        usage.to_csv(root / "plots/tokenizers" / name / "code_usage.csv", index=False)
    _json({"protocol": "gts", "type": "global_temporal", "test_users": N_TEST}, root / "metrics/split/gts.json")
    _json({"protocol": "loo", "type": "leave_one_out", "test_users": N_TEST}, root / "metrics/split/loo.json")
    (root / "params.yaml").write_text(PARAMS)
    return {"base_ranks": base_ranks, "misses": misses, "hits": hits, "cold": gts["test"]["target_cold"].to_numpy()}


def _json(obj, path: Path) -> None:
    path.write_text(json.dumps(obj, indent=2) + "\n")


def _argv(root: Path, out: str = "reports") -> list[str]:
    return ["report.py", "--results-dir", str(root / "results"), "--eval-metrics", str(root / "metrics/eval"),
            "--train-metrics", str(root / "metrics/train"), "--tokenizer-metrics", str(root / "metrics/tokenizers"),
            "--tokenizer-plots", str(root / "plots/tokenizers"), "--split-metrics", str(root / "metrics/split"),
            "--train-plots", str(root / "plots/train"), "--results", str(root / out / "RESULTS.md"),
            "--figures-dir", str(root / out / "figures"), "--leaderboard", str(root / out / "leaderboard.json"),
            "--params", str(root / "params.yaml")]


def run_stage(root: Path, out: str = "reports") -> tuple[str, dict]:
    """stages/report.py's main in-process -> (RESULTS.md, leaderboard.json)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(STAGES))  # stage scripts import `_common` as a sibling
        mp.setattr(sys, "argv", _argv(root, out))
        importlib.import_module("stages.report").main()
    return (root / out / "RESULTS.md").read_text(), json.loads((root / out / "leaderboard.json").read_text())


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    edits = build(root)
    markdown, board = run_stage(root)
    return root, edits, markdown, board


@pytest.fixture
def fresh(study, tmp_path):
    """A private copy of the inputs (no outputs) for tests that break them."""
    root = tmp_path / "study"
    shutil.copytree(study[0], root, ignore=shutil.ignore_patterns("reports", "again"))
    return root


# --- markdown helpers --------------------------------------------------------------------------------------

def section(markdown: str, heading: str) -> str:
    """The text under `heading` up to the next heading of the same or a higher level."""
    level = len(heading) - len(heading.lstrip("#"))
    start = markdown.index(heading + "\n") if (heading + "\n") in markdown else markdown.index(heading)
    rest = markdown[start + len(heading):]
    nxt = re.search(rf"^#{{1,{level}}} ", rest, flags=re.M)
    return rest[: nxt.start()] if nxt else rest


def table(text: str) -> tuple[list[str], list[list[str]]]:
    """The first markdown table in `text` -> (header cells, row cells)."""
    lines = [ln for ln in text.splitlines() if ln.startswith("|")]
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    return cells[0], cells[2:]


def flat_key(label: str) -> str:
    """Leaderboard column label ("NDCG@10", "cold HR@10") -> the eval metrics key."""
    prefix = {"cold": "test/cold_target/", "warm": "test/warm_target/"}
    head, _, metric = label.rpartition(" ")
    return prefix.get(head, "test/") + metric.lower()


def number(cell: str) -> float:
    return float(cell.replace("*", "").replace("†", ""))


def protocol_section(markdown: str, protocol: str) -> str:
    return section(markdown, next(ln for ln in markdown.splitlines() if ln.startswith(f"## Protocol `{protocol}`")))


# --- (a) the rendered report -------------------------------------------------------------------------------

def test_one_section_per_protocol_gts_first(study):
    _, _, md, _ = study
    heads = re.findall(r"^## Protocol `(\w+)`: (.*)$", md, flags=re.M)
    assert [h[0] for h in heads] == ["gts", "loo"]
    assert heads[0][1].startswith("global temporal split") and heads[1][1].startswith("leave-one-out")
    assert f"{N_TEST} test users" in protocol_section(md, "gts")
    runs_in = {p: set(re.findall(r"^\| `?(\w+)", section(protocol_section(md, p), "### Leaderboard (test)"),
                                 flags=re.M)) - {"run"} for p in ("gts", "loo")}
    assert runs_in == {p: {r for r, v in RUNS.items() if v[4] == p} for p in ("gts", "loo")}


def test_leaderboard_grouped_by_family_then_by_test_ndcg(study):
    root, _, md, _ = study
    for protocol in ("gts", "loo"):
        head, rows = table(section(protocol_section(md, protocol), "### Leaderboard (test)"))
        col = head.index("NDCG@10")
        fam = [FAMILY_ORDER.index(r[1]) for r in rows]
        assert fam == sorted(fam)  # families in FAMILY_ORDER, each one block
        for f in set(fam):
            vals = [number(r[col]) for r, g in zip(rows, fam, strict=True) if g == f]
            assert vals == sorted(vals, reverse=True)
        for r in rows:  # the cells are the eval metrics
            ev = json.loads((root / "metrics/eval" / f"{r[0].split()[0]}.json").read_text())
            assert number(r[col]) == pytest.approx(ev["test/ndcg@10"], abs=5e-5)
    for protocol in ("gts", "loo"):  # the cold/warm table: the same families, by cold-target HR@10 within one
        text = section(protocol_section(md, protocol), "### Cold vs warm targets (test)")
        assert "Grouped by family, best cold-target HR@10 first within a family." in text
        head, rows = table(text)
        fam = [FAMILY_ORDER.index(RUNS[r[0].split()[0]][0]) for r in rows]
        assert fam == sorted(fam) and len(rows) == sum(v[4] == protocol for v in RUNS.values())
        for f in set(fam):
            vals = [number(r[head.index("cold HR@10")]) for r, g in zip(rows, fam, strict=True) if g == f]
            assert vals == sorted(vals, reverse=True)
    names = [r[0] for r in table(section(protocol_section(md, "gts"), "### Leaderboard (test)"))[1]]
    assert names[:2] == ["sasrec_id (baseline)", "gpt2_id"]  # by NDCG, not by name
    assert names[2:4] == ["sasrec_content_plus_id", "gpt2_content"] and names[4] == "gpt2_sid"


def test_baseline_marked_once_per_protocol(study):
    _, _, md, board = study
    assert board["gts"]["baseline"] == "sasrec_id" and board["loo"]["baseline"] == "sasrec_id_loo"
    for protocol, base in (("gts", "sasrec_id"), ("loo", "sasrec_id_loo")):
        _, rows = table(section(protocol_section(md, protocol), "### Leaderboard (test)"))
        assert [r[0] for r in rows if "(baseline)" in r[0]] == [f"{base} (baseline)"]


def test_dagger_exactly_on_significant_cells(study):
    _, _, md, board = study
    daggers = tested = 0
    for protocol in ("gts", "loo"):
        comp = board[protocol]["comparisons"]
        for heading in ("### Leaderboard (test)", "### Cold vs warm targets (test)"):
            head, rows = table(section(protocol_section(md, protocol), heading))
            first_metric = 3 if heading.startswith("### Leaderboard") else 1
            for r in rows:
                run = r[0].split()[0]
                for label, cell in zip(head[first_metric:], r[first_metric:], strict=True):
                    t = comp.get(run, {}).get(flat_key(label))
                    assert ("†" in cell) == bool(t and t["significant"]), (protocol, run, label)
                    daggers += "†" in cell
                    tested += t is not None
    assert daggers >= 2 and tested > daggers  # some significant cells, some tested and not significant
    assert comp_is(board, "gts", "sasrec_content_plus_id", "test/ndcg@10")["significant"]
    assert not comp_is(board, "gts", "gpt2_id", "test/ndcg@10")["significant"]


def comp_is(board: dict, protocol: str, run: str, key: str) -> dict:
    return board[protocol]["comparisons"][run][key]


def test_paired_table_shows_holm_adjusted_p(study):
    _, _, md, board = study
    for protocol, base in (("gts", "sasrec_id"), ("loo", "sasrec_id_loo")):
        comp = board[protocol]["comparisons"]
        tests = [t for run in comp.values() for t in run.values()]
        assert len(tests) == 4 * (sum(v[4] == protocol for v in RUNS.values()) - 1)
        assert [t["p_holm"] for t in tests] == pytest.approx(holm([t["p_value"] for t in tests]))  # one family
        smallest = min(tests, key=lambda t: t["p_value"])
        assert smallest["p_holm"] == pytest.approx(min(1.0, len(tests) * smallest["p_value"]))
        text = protocol_section(md, protocol)
        assert f"Holm-adjusted over all {len(tests)} tests of this protocol" in text
        head, rows = table(section(text, f"### Paired tests vs `{base}`"))
        assert head[6:9] == ["p (Wilcoxon)", "p (Holm)", "significant"]
        assert len(rows) == len(tests)
        for r in rows:
            t = comp[r[0]][r[1]]
            assert r[7] == f"{t['p_holm']:.2g}" and r[6] == f"{t['p_value']:.2g}"
            assert r[8] == ("yes" if t["significant"] else "no")
            assert t["p_holm"] >= t["p_value"]
    # a Holm-adjusted p that differs visibly from the raw one is in the gts table
    gts = [t for run in board["gts"]["comparisons"].values() for t in run.values()]
    assert any(f"{t['p_holm']:.2g}" != f"{t['p_value']:.2g}" for t in gts)


def test_every_referenced_figure_is_a_png(study):
    root, _, md, _ = study
    refs = dict(re.findall(r"!\[([^\]]+)\]\(([^)]+)\)", md))
    assert set(refs) == {f"{k}_{p}" for k in ("metrics_vs_k", "cold_warm", "val_curves") for p in ("gts", "loo")} \
        | {"codebook_usage"}
    for name, rel in refs.items():
        path = (root / "reports" / rel).resolve()
        assert path.is_file() and path.read_bytes()[:8] == PNG, name
    assert {p.stem for p in (root / "reports/figures").glob("*.png")} == set(refs)


def test_leaderboard_json(study):
    root, _, _, board = study
    assert set(board) == {"gts", "loo"}
    for protocol, entry in board.items():
        runs = {r for r, v in RUNS.items() if v[4] == protocol}
        assert set(entry["runs"]) == runs and entry["alpha"] == 0.05
        assert set(entry["comparisons"]) == runs - {entry["baseline"]}
        for run, tests in entry["comparisons"].items():
            assert set(tests) == {"test/ndcg@10", "test/hr@10", "test/cold_target/ndcg@10", "test/cold_target/hr@10"}
            assert entry["runs"][run] == json.loads((root / "metrics/eval" / f"{run}.json").read_text())
            assert tests["test/ndcg@10"]["model"] == pytest.approx(entry["runs"][run]["test/ndcg@10"], abs=1e-6)
            assert tests["test/ndcg@10"]["users"] == N_TEST


def test_tokenizer_generator_and_cost_tables(study):
    _, _, md, _ = study
    head, rows = table(section(md, "## Tokenizers: codebook usage and collisions"))
    assert [r[0] for r in rows] == ["rqvae", "random"]  # by collision rate
    assert rows[0][head.index("L1 used / perplexity")] == "8 / 6"
    head, rows = table(section(protocol_section(md, "gts"), "### Semantic-ID generators: per-level prefix hit rates"))
    assert [r[0] for r in rows] == ["gpt2_sid"] and rows[0][1] == "rqvae" and len(head) == 2 + 3 + 3
    assert "No Semantic-ID generator in this protocol." in protocol_section(md, "loo")
    head, rows = table(section(md, "## Training cost"))
    assert {r[0] for r in rows} == set(RUNS)
    fam = [FAMILY_ORDER.index(r[1]) for r in rows]
    assert fam == sorted(fam)


# --- (b) paired tests come from the stored ranks -------------------------------------------------------------

def test_paired_diff_equals_the_hand_computed_difference(study):
    _, edits, _, board = study
    comp = board["gts"]["comparisons"]
    better = comp["sasrec_content_plus_id"]
    # 24 misses (NDCG 0) became rank 1 (NDCG 1): +24 / 120 on all users, the cold ones' share on the cold slice
    assert better["test/ndcg@10"]["diff"] == pytest.approx(PROMOTED / N_TEST, abs=1e-6)
    assert better["test/hr@10"]["diff"] == pytest.approx(PROMOTED / N_TEST, abs=1e-6)
    cold = edits["cold"]
    assert better["test/cold_target/hr@10"]["diff"] == pytest.approx(cold[edits["misses"]].sum() / cold.sum(), abs=1e-6)
    assert better["test/cold_target/hr@10"]["users"] == cold.sum()
    # 2 hits at rank r <= 10 became misses: minus their 1 / log2(r + 1)
    lost = sum(1 / math.log2(r + 1) for r in edits["base_ranks"][edits["hits"]])
    worse = comp["gpt2_id"]["test/ndcg@10"]
    assert worse["diff"] == pytest.approx(-lost / N_TEST, abs=1e-6) and not worse["significant"]
    base_ndcg = np.where(edits["base_ranks"] <= 10, 1 / np.log2(edits["base_ranks"] + 1), 0).mean()
    assert worse["baseline"] == better["test/ndcg@10"]["baseline"] == pytest.approx(base_ndcg, abs=1e-6)


def test_paired_tests_ignore_the_eval_means(fresh):
    """Tampering with a run's eval means leaves its paired test unchanged: it is recomputed from ranks.parquet."""
    path = fresh / "metrics/eval/sasrec_content_plus_id.json"
    ev = json.loads(path.read_text())
    _json(ev | {"test/ndcg@10": 0.9999, "test/hr@10": 0.9999}, path)
    _, board = run_stage(fresh)
    t = comp_is(board, "gts", "sasrec_content_plus_id", "test/ndcg@10")
    assert t["diff"] == pytest.approx(PROMOTED / N_TEST, abs=1e-6) and t["model"] == pytest.approx(ev["test/ndcg@10"])


# --- (c) selection on validation -----------------------------------------------------------------------------

def test_chosen_on_validation_not_on_test(study):
    root, _, md, board = study
    ev = {r: json.loads((root / "metrics/eval" / f"{r}.json").read_text()) for r in RUNS if RUNS[r][4] == "gts"}
    best_val = max(ev, key=lambda r: ev[r]["val/ndcg@10"])
    best_test = max(ev, key=lambda r: ev[r]["test/ndcg@10"])
    assert (best_val, best_test) == ("gpt2_sid", "sasrec_content_plus_id")  # the fixture's point
    lines = section(protocol_section(md, "gts"), "### What works best").strip().splitlines()
    sid = ev["gpt2_sid"]
    assert lines[0].startswith(f"- **Chosen on validation NDCG@10: `gpt2_sid`** (val {sid['val/ndcg@10']:.4f}); "
                               f"test NDCG@10 {sid['test/ndcg@10']:.4f}")
    t = comp_is(board, "gts", "gpt2_sid", "test/ndcg@10")
    verdict = "significant" if t["significant"] else "not significant"
    assert f"baseline `sasrec_id` {ev['sasrec_id']['test/ndcg@10']:.4f}" in lines[0]
    assert f"{verdict} after Holm: p = {t['p_holm']:.2g})" in lines[0]
    assert lines[1] == ("- Highest test NDCG@10 (not a selection: test is not used to choose): "
                        f"`sasrec_content_plus_id` {ev['sasrec_content_plus_id']['test/ndcg@10']:.4f}.")


# --- (d) clear errors ----------------------------------------------------------------------------------------

def test_run_without_ranks_is_named(fresh):
    (fresh / "results/gpt2_content/ranks.parquet").unlink()
    with pytest.raises(SystemExit, match=r"not evaluated.*\['gpt2_content'\]"):
        run_stage(fresh)
    assert not (fresh / "reports/RESULTS.md").exists()


def test_run_without_eval_metrics_is_named(fresh):
    (fresh / "metrics/eval/gpt2_id_loo.json").unlink()
    with pytest.raises(SystemExit, match=r"not evaluated.*\['gpt2_id_loo'\]"):
        run_stage(fresh)


def test_differing_test_users_within_a_protocol_are_an_error(fresh):
    path = fresh / "results/gpt2_id_loo/ranks.parquet"
    ranks = pd.read_parquet(path)
    ranks.drop(index=ranks.index[ranks["split"] == "test"][-1]).to_parquet(path, index=False)
    with pytest.raises(SystemExit, match=r"gpt2_id_loo.*test users differ.*sasrec_id_loo"):
        run_stage(fresh)
    assert not (fresh / "reports/RESULTS.md").exists()


def test_no_runs_is_an_error(tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "params.yaml").write_text(PARAMS)
    with pytest.raises(SystemExit, match="no run.json under"):
        run_stage(tmp_path)


# --- (e) determinism -----------------------------------------------------------------------------------------

def test_rendering_twice_is_identical(study):
    root, _, md, board = study
    md2, board2 = run_stage(root, out="again")
    assert md2 == md and board2 == board


def _inputs(root: Path) -> ReportInputs:
    runs = {r: json.loads((root / "results" / r / "run.json").read_text()) for r in RUNS}
    evals = {r: json.loads((root / "metrics/eval" / f"{r}.json").read_text()) for r in RUNS}
    return ReportInputs(runs=runs, evals=evals,
                        per_user={r: pd.read_parquet(root / "results" / r / "ranks.parquet") for r in RUNS},
                        train={r: json.loads((root / "metrics/train" / f"{r}.json").read_text()) for r in RUNS})


def test_markdown_does_not_depend_on_the_hash_seed(study, tmp_path):
    """Ties (here: two representations with the same best NDCG@10) must not be broken by set order."""
    inp = _inputs(study[0])
    tie = inp.evals["sasrec_content_plus_id"]["test/ndcg@10"]
    inp.evals["gpt2_content"]["test/ndcg@10"] = tie
    with open(tmp_path / "inputs.pkl", "wb") as f:
        pickle.dump(inp, f)
    script = ("import pickle, sys; from lib.report import ReportConfig, render; "
              "inp = pickle.load(open(sys.argv[1], 'rb')); "
              "sys.stdout.write(render(inp, ReportConfig(n_bootstrap=50), {}).markdown)")
    outs = {subprocess.run([sys.executable, "-c", script, str(tmp_path / "inputs.pkl")], cwd=ROOT, check=True,
                           capture_output=True, text=True, env=os.environ | {"PYTHONHASHSEED": seed}).stdout
            for seed in ("0", "1", "2")}  # 0 and 1 order the tied pair differently without a tie-break
    assert len(outs) == 1
    assert render(inp, ReportConfig(n_bootstrap=50), {}).markdown in outs


def test_published_figures_only_under_their_protocol(study):
    md = (study[0] / "reports/RESULTS.md").read_text()
    gts, loo = md.split("## Protocol `loo`")[0], md.split("## Protocol `loo`")[1]
    assert "Paper X" not in gts and "| Paper X | 0.0648 | 0.0384 | Someone 2023 |" in loo
    assert "Against published figures" in loo and "(this study)" in loo


def test_grid_cell_shows_the_run_without_overrides():
    from lib.report import representation_grid
    runs = {"a_variant": {"family": "rankers", "backbone": "sasrec", "representation": "id", "overrides": {"x": 1}},
            "b_plain": {"family": "rankers", "backbone": "sasrec", "representation": "id", "overrides": {}},
            "c_variant": {"family": "rankers", "backbone": "sasrec", "representation": "id", "overrides": {"y": 2}}}
    evals = {"a_variant": {"test/ndcg@10": 0.3}, "b_plain": {"test/ndcg@10": 0.1}, "c_variant": {"test/ndcg@10": 0.2}}
    inp = ReportInputs(runs=runs, evals=evals, per_user={})
    rows = [line for line in representation_grid(list(runs), inp) if line.startswith("| id ")]
    assert rows == ["| id | 0.1000 | – |"]
