"""stages/report.py + lib/report/: RESULTS.md from committed-style per-run files, end to end on synthetic runs.

The fixture writes what the training, evaluation, tokenizer and split stages commit (run.json, ranks.parquet,
metrics/{eval,train,tokenizers,split}, dvclive curves, code-usage tables) for three protocols (gts, its copy with
random same-day ties, loo); the eval metrics, per-user ranks and cold-pool controls come from
lib.evaluate.evaluate_run on synthetic lists, so they agree as in the pipeline. One model has three seeds.
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

from lib.cold import cold_pools
from lib.evaluate import EvaluateConfig, evaluate_run, loaded_ranks
from lib.metrics import per_user_metrics
from lib.report import FAMILY_ORDER, Models, ReportConfig, ReportInputs, render
from lib.significance import holm, paired_test
from tests.conftest import eval_rows, ranked_lists

ROOT = Path(__file__).resolve().parent.parent
STAGES = ROOT / "stages"
N_ITEMS = 50  # items 46..50 are cold (never a training item); 46..48 have an interaction before T_test
COLD_ITEMS = np.arange(46, N_ITEMS + 1)
N_TEST, N_VAL = 120, 100
EVAL = EvaluateConfig(ks=(5, 10, 20))
PNG = b"\x89PNG\r\n\x1a\n"
PARAMS = """report:
  baseline: {backbone: sasrec, representation: id}
  cold_baseline: {backbone: sasrec, representation: content}
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
    "gpt2_content_s1": ("content_rankers", "gpt2", "content", None, "gts", None),
    "gpt2_content_s2": ("content_rankers", "gpt2", "content", None, "gts", None),
    "sasrec_content": ("content_rankers", "sasrec", "content", None, "gts", None),
    "gpt2_sid": ("generators", "gpt2", "sid", "rqvae", "gts", 3),
    "sasrec_id_loo": ("rankers", "sasrec", "id", None, "loo", None),
    "gpt2_id_loo": ("rankers", "gpt2", "id", None, "loo", None),
    "sasrec_id_rt": ("rankers", "sasrec", "id", None, "gts_random_ties", None),
    "sasrec_content_rt": ("content_rankers", "sasrec", "content", None, "gts_random_ties", None),
}
SEEDS = {"gpt2_content_s1": 1, "gpt2_content_s2": 2}  # run -> train.seed override; other runs: seed 42, none
PROMOTED, DEMOTED = 24, 2  # content_plus_id = baseline + 24 misses put first; gpt2_id = baseline - 2 hits
COLD_PROMOTED = 4  # sasrec_content = baseline + 4 cold-target misses (not among the 24) put first


PROTOCOLS = ("gts", "gts_random_ties", "loo")


def models_in(protocol: str) -> set[str]:
    """The fixture's models (runs without a seed override) of one protocol."""
    return {r for r, v in RUNS.items() if v[4] == protocol and r not in SEEDS}


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


def _drop_cold(recs: pd.DataFrame) -> pd.DataFrame:
    """An ID model's lists: it cannot score an item without a training interaction."""
    return recs.assign(items=[x[~np.isin(x, COLD_ITEMS)] for x in recs["items"]])


def _ranks(truth: pd.DataFrame, recs: pd.DataFrame) -> np.ndarray:
    """(U,) float ranks of one split, inf = miss (what the per-user file stores)."""
    one = {"val": truth, "test": truth}
    ev = evaluate_run(one, {"val": recs, "test": recs}, pd.DataFrame({"item": np.arange(1, N_ITEMS + 1)}), EVAL)
    return loaded_ranks(ev.per_user[ev.per_user["split"] == "test"]["rank"].to_numpy())


def build(root: Path) -> dict:
    """Write the committed-style inputs of the report under `root`; returns the hand-made edits."""
    truth = {"gts": {"val": _truth(1, N_VAL), "test": _truth(2, N_TEST)},
             "loo": {"val": _truth(3, N_VAL, 1000), "test": _truth(4, N_TEST, 1000)}}
    truth["gts_random_ties"] = truth["gts"]
    base = {s: _drop_cold(_recs(truth["gts"][s], 10 + i, 0.1)) for i, s in enumerate(("val", "test"))}
    base_ranks = _ranks(truth["gts"]["test"], base["test"])
    misses = np.flatnonzero(~np.isfinite(base_ranks))[:PROMOTED]
    hits = np.flatnonzero(base_ranks <= 10)[:DEMOTED]
    cold = truth["gts"]["test"]["target_cold"].to_numpy()
    cold_misses = np.setdiff1d(np.flatnonzero(cold), misses)[:COLD_PROMOTED]
    assert len(misses) == PROMOTED and len(hits) == DEMOTED and len(cold_misses) == COLD_PROMOTED
    gts, loo = truth["gts"], truth["loo"]
    content = {"val": base["val"], "test": _move(base["test"], gts["test"], cold_misses, first=True)}
    recs = {
        "sasrec_id": base,
        "gpt2_id": {"val": _drop_cold(_recs(gts["val"], 21, 0.15)),
                    "test": _move(base["test"], gts["test"], hits, first=False)},
        "sasrec_content_plus_id": {"val": base["val"], "test": _move(base["test"], gts["test"], misses, first=True)},
        "gpt2_content": {"val": _recs(gts["val"], 31, 0.1), "test": _recs(gts["test"], 32, 0.2)},
        "gpt2_content_s1": {"val": _recs(gts["val"], 33, 0.1), "test": _recs(gts["test"], 34, 0.15)},
        "gpt2_content_s2": {"val": _recs(gts["val"], 35, 0.1), "test": _recs(gts["test"], 36, 0.25)},
        "sasrec_content": content,
        "gpt2_sid": {"val": _recs(gts["val"], 41, 0.9), "test": _recs(gts["test"], 42, 0.15)},  # best on val only
        "sasrec_id_loo": {s: _recs(loo[s], 50 + i, 0.3) for i, s in enumerate(("val", "test"))},
        "gpt2_id_loo": {s: _recs(loo[s], 60 + i, 0.35) for i, s in enumerate(("val", "test"))},
        "sasrec_id_rt": {"val": base["val"], "test": _move(base["test"], gts["test"], hits, first=False)},
        "sasrec_content_rt": content,
    }
    items = pd.DataFrame({"item": np.arange(1, N_ITEMS + 1)})
    known = np.r_[np.arange(1, 46), COLD_ITEMS[:3]]  # the training part: 3 of the 5 cold items (before T_test)
    gts_pools = cold_pools(N_ITEMS, np.arange(1, 46), ("untrained", "known_at_test"), known_items=known)
    pools = {"gts": gts_pools, "gts_random_ties": gts_pools,
             "loo": cold_pools(N_ITEMS, np.arange(1, 46), ("untrained",))}
    for d in ("metrics/eval", "metrics/train", "metrics/tokenizers", "metrics/split", "plots/train"):
        (root / d).mkdir(parents=True)
    for i, (run, (family, backbone, rep, tok, protocol, levels)) in enumerate(RUNS.items()):
        info = {"name": run, "family": family, "backbone": backbone, "representation": rep, "tokenizer": tok,
                "protocol": protocol, "n_levels": levels, "seed": SEEDS.get(run, 42),
                "overrides": {"train.seed": SEEDS[run]} if run in SEEDS else {}}
        ev = evaluate_run(truth[protocol], recs[run], items, EVAL, label=run, pools=pools[protocol])
        (root / "results" / run).mkdir(parents=True)
        _json(info, root / "results" / run / "run.json")
        ev.per_user.to_parquet(root / "results" / run / "ranks.parquet", index=False)
        _json({"run": run, "protocol": protocol, **ev.metrics}, root / "metrics/eval" / f"{run}.json")
        train = {"best_epoch": 5 + i, "epochs": 13 + i, "seconds_per_epoch": 1.5 + i, "train_seconds": 20.0 * (i + 1),
                 "peak_memory_mb": 300.0 + i, "parameters": 10_000 * (i + 1)}
        if run == "sasrec_content":
            train["cold_shift"] = 1.5  # chosen on validation (lib/models/recommend.py): named by the control section
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
    temporal = {"type": "global_temporal", "t_test": 10, "t_val": 5, "test_users": N_TEST, "val_users": N_VAL,
                "retrain_on_validation": False, "val_repeat_targets": 3, "test_repeat_targets": 2}
    _json({"protocol": "gts", **temporal, "tie_break": "file_order", "val_same_day_target_fraction": 0.3,
           "test_same_day_target_fraction": 0.25}, root / "metrics/split/gts.json")
    _json({"protocol": "gts_random_ties", **temporal, "tie_break": "random", "val_same_day_target_fraction": 0.31,
           "test_same_day_target_fraction": 0.26}, root / "metrics/split/gts_random_ties.json")
    _json({"protocol": "loo", "type": "leave_one_out", "test_users": N_TEST, "tie_break": "file_order",
           "val_same_day_target_fraction": 0.1, "test_same_day_target_fraction": 0.12},
          root / "metrics/split/loo.json")
    (root / "params.yaml").write_text(PARAMS)
    return {"base_ranks": base_ranks, "misses": misses, "hits": hits, "cold": cold, "cold_misses": cold_misses}


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
    lines = []
    for ln in text[text.index("\n|") + 1 if not text.startswith("|") else 0:].splitlines():
        if not ln.startswith("|"):
            break
        lines.append(ln)
    cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines]
    return cells[0], cells[2:]


def flat_key(label: str) -> str:
    """Leaderboard column label ("NDCG@10", "cold HR@10") -> the eval metrics key."""
    prefix = {"cold": "test/cold_target/", "warm": "test/warm_target/"}
    head, _, metric = label.rpartition(" ")
    return prefix.get(head, "test/") + metric.lower()


def number(cell: str) -> float:
    """A metric cell ("**0.1234** ± 0.0100†") -> its mean."""
    return float(cell.split(" ±")[0].replace("*", "").replace("†", ""))


def protocol_section(markdown: str, protocol: str) -> str:
    return section(markdown, next(ln for ln in markdown.splitlines() if ln.startswith(f"## Protocol `{protocol}`")))


# --- (a) the rendered report -------------------------------------------------------------------------------

def test_one_section_per_protocol_gts_first(study):
    _, _, md, _ = study
    heads = re.findall(r"^## Protocol `(\w+)`: (.*)$", md, flags=re.M)
    assert [h[0] for h in heads] == ["gts", "gts_random_ties", "loo"]
    assert heads[0][1].startswith("global temporal split") and heads[2][1].startswith("leave-one-out")
    assert f"{N_TEST} test users" in protocol_section(md, "gts")
    runs_in = {p: set(re.findall(r"^\| `?(\w+)", section(protocol_section(md, p), "### Leaderboard (test)"),
                                 flags=re.M)) - {"run"} for p in PROTOCOLS}
    assert runs_in == {p: models_in(p) for p in PROTOCOLS}  # one row per model, not per seed


def test_leaderboard_grouped_by_family_then_by_test_ndcg(study):
    _, _, md, board = study
    for protocol in PROTOCOLS:
        head, rows = table(section(protocol_section(md, protocol), "### Leaderboard (test)"))
        col = head.index("NDCG@10")
        fam = [FAMILY_ORDER.index(r[1]) for r in rows]
        assert fam == sorted(fam)  # families in FAMILY_ORDER, each one block
        for f in set(fam):
            vals = [number(r[col]) for r, g in zip(rows, fam, strict=True) if g == f]
            assert vals == sorted(vals, reverse=True)
        for r in rows:  # the cells are the models' eval metrics (means over seeds)
            ev = board[protocol]["models"][r[0].split()[0]]["metrics"]
            assert number(r[col]) == pytest.approx(ev["test/ndcg@10"], abs=5e-5)
    for protocol in PROTOCOLS:  # the cold/warm table: the same families, by cold-target HR@10 within one
        text = section(protocol_section(md, protocol), "### Cold vs warm targets (test)")
        assert "Grouped by family, best cold-target HR@10 first within a family." in text
        head, rows = table(text)
        fam = [FAMILY_ORDER.index(RUNS[r[0].split()[0]][0]) for r in rows]
        assert fam == sorted(fam) and len(rows) == len(models_in(protocol))
        for f in set(fam):
            vals = [number(r[head.index("cold HR@10")]) for r, g in zip(rows, fam, strict=True) if g == f]
            assert vals == sorted(vals, reverse=True)
    names = [r[0] for r in table(section(protocol_section(md, "gts"), "### Leaderboard (test)"))[1]]
    assert names[:2] == ["sasrec_id (baseline)", "gpt2_id"]  # by NDCG, not by name
    assert names[2:5] == ["sasrec_content_plus_id", "gpt2_content (3 seeds)", "sasrec_content (cold baseline)"]
    assert names[5] == "gpt2_sid"


def test_baseline_marked_once_per_protocol(study):
    _, _, md, board = study
    assert board["gts"]["baseline"] == "sasrec_id" and board["loo"]["baseline"] == "sasrec_id_loo"
    assert board["gts"]["cold_baseline"] == "sasrec_content" and board["loo"]["cold_baseline"] is None
    for protocol, base in (("gts", "sasrec_id"), ("loo", "sasrec_id_loo")):
        _, rows = table(section(protocol_section(md, protocol), "### Leaderboard (test)"))
        assert [r[0] for r in rows if "(baseline)" in r[0]] == [f"{base} (baseline)"]


def test_dagger_exactly_on_significant_cells(study):
    _, _, md, board = study
    daggers = tested = 0
    for protocol in PROTOCOLS:
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


def expected_tests(board: dict, protocol: str) -> int:
    """Tests of a protocol by the rules: each significance metric of each model vs the baseline (all users), vs
    the cold baseline (cold targets); HR@10 of each one-seed model vs the control (each pool whose items the
    model's top 10 holds)."""
    entry = board[protocol]
    models = entry["models"]
    n = sum(m != entry["baseline"] for m in models) + sum(m != entry["cold_baseline"] for m in models
                                                          if entry["cold_baseline"])
    pools = [k.split("/")[2] for k in models[entry["baseline"]]["metrics"]
             if re.fullmatch(r"test/cold_pool/\w+/items", k)]
    slots = [{p: m["metrics"][f"test/cold_pool/{p}/cold_slots@10"] for p in pools}
             for m in models.values() if len(m["runs"]) == 1]  # the exact control test needs one seed's hits
    control = sum(s["untrained"] > 0 and s[p] > 0 for s in slots for p in pools)  # HR@10 only
    return 2 * n + control


def test_paired_table_shows_holm_adjusted_p(study):
    _, _, md, board = study
    for protocol in PROTOCOLS:
        comp = board[protocol]["comparisons"]
        tests = [t for run in comp.values() for t in run.values()]
        assert len(tests) == expected_tests(board, protocol) == board[protocol]["holm_tests"]
        assert [t["p_holm"] for t in tests] == pytest.approx(holm([t["p_value"] for t in tests]))  # one family
        smallest = min(tests, key=lambda t: t["p_value"])
        assert smallest["p_holm"] == pytest.approx(min(1.0, len(tests) * smallest["p_value"]))
        text = protocol_section(md, protocol)
        assert f"Holm-adjusted over all {len(tests)} tests of this protocol" in text
        head, rows = table(section(text, "### Paired tests"))
        assert head[2] == "against" and head[7:10] == ["p (Wilcoxon)", "p (Holm)", "significant"]
        assert len(rows) == len(tests)
        for r in rows:
            t = comp[r[0]][r[1]]
            assert r[2] == t["against"] and r[8] == f"{t['p_holm']:.2g}" and r[7] == f"{t['p_value']:.2g}"
            assert r[9] == ("yes" if t["significant"] else "no")
            assert t["p_holm"] >= t["p_value"]
    # a Holm-adjusted p that differs visibly from the raw one is in the gts table
    gts = [t for run in board["gts"]["comparisons"].values() for t in run.values()]
    assert any(f"{t['p_holm']:.2g}" != f"{t['p_value']:.2g}" for t in gts)


def test_every_referenced_figure_is_a_png(study):
    root, _, md, _ = study
    refs = dict(re.findall(r"!\[([^\]]+)\]\(([^)]+)\)", md))
    assert set(refs) == {f"{k}_{p}" for k in ("metrics_vs_k", "cold_warm", "val_curves") for p in PROTOCOLS} \
        | {"codebook_usage"}
    for name, rel in refs.items():
        path = (root / "reports" / rel).resolve()
        assert path.is_file() and path.read_bytes()[:8] == PNG, name
    assert {p.stem for p in (root / "reports/figures").glob("*.png")} == set(refs)


def test_leaderboard_json(study):
    root, _, _, board = study
    assert set(board) == set(PROTOCOLS)
    for protocol, entry in board.items():
        models = models_in(protocol)
        assert set(entry["models"]) == models and entry["alpha"] == 0.05 and entry["family"] == "protocol"
        base, cold = entry["baseline"], entry["cold_baseline"]
        for model in models:
            tests = entry["comparisons"].get(model, {})
            all_users = {k for k in tests if k.count("/") == 1}
            assert all_users == (set() if model == base else {"test/ndcg@10", "test/hr@10"})
            assert {k for k in tests if k.startswith("test/cold_target/")} == (
                set() if cold in (None, model) else {"test/cold_target/ndcg@10", "test/cold_target/hr@10"})
            assert all(t["against"] == (base if k.count("/") == 1 else cold if "cold_target" in k else "control")
                       for k, t in tests.items())
            if entry["models"][model]["runs"] == [model]:  # one seed: its own eval file
                assert entry["models"][model]["metrics"] == json.loads((root / "metrics/eval" / f"{model}.json")
                                                                       .read_text())
                assert "sd" not in entry["models"][model]
            if model != base:
                assert tests["test/ndcg@10"]["model"] == pytest.approx(
                    entry["models"][model]["metrics"]["test/ndcg@10"], abs=1e-6)
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
    cold = edits["cold"]  # vs the cold baseline, which put COLD_PROMOTED other cold misses first
    assert better["test/cold_target/hr@10"]["diff"] == pytest.approx(
        (cold[edits["misses"]].sum() - COLD_PROMOTED) / cold.sum(), abs=1e-6)
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
    ev = {r: board["gts"]["models"][r]["metrics"] for r in models_in("gts")}
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


def test_seeds_with_other_test_users_are_an_error(fresh):
    path = fresh / "results/gpt2_content_s1/ranks.parquet"
    ranks = pd.read_parquet(path)
    ranks.drop(index=ranks.index[ranks["split"] == "test"][0]).to_parquet(path, index=False)
    with pytest.raises(SystemExit, match=r"gpt2_content_s1.*test users differ.*'gpt2_content', a seed of the same"):
        run_stage(fresh)


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
    for run in ("gpt2_content", *SEEDS):  # every seed of the model: its mean is the tie
        inp.evals[run]["test/ndcg@10"] = tie
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
    from lib.report.tables import representation_grid
    runs = {"a_variant": {"family": "rankers", "backbone": "sasrec", "representation": "id", "overrides": {"x": 1}},
            "b_plain": {"family": "rankers", "backbone": "sasrec", "representation": "id", "overrides": {}},
            "c_variant": {"family": "rankers", "backbone": "sasrec", "representation": "id", "overrides": {"y": 2}}}
    evals = {"a_variant": {"test/ndcg@10": 0.3}, "b_plain": {"test/ndcg@10": 0.1}, "c_variant": {"test/ndcg@10": 0.2}}
    rows = [line for line in representation_grid(list(runs), Models(runs=runs, evals=evals))
            if line.startswith("| id ")]
    assert rows == ["| id | 0.1000 | – |"]


# --- (f) seeds, cold baseline, cold-start control, Holm family, protocol effects ------------------------------

SEED_RUNS = ["gpt2_content", *SEEDS]


def _eval(root: Path, run: str) -> dict:
    return json.loads((root / "metrics/eval" / f"{run}.json").read_text())


def _per_user(root: Path, run: str, metric: str = "ndcg@10") -> np.ndarray:
    """A run's per-user test values of `metric`, recomputed from its ranks.parquet by hand."""
    frame = pd.read_parquet(root / "results" / run / "ranks.parquet")
    ranks = loaded_ranks(frame[frame["split"] == "test"]["rank"].to_numpy())
    return per_user_metrics(ranks, [int(metric.split("@")[1])])[metric].to_numpy()


def test_seeds_are_one_model_with_mean_and_sd(study):
    root, _, md, board = study
    vals = [_eval(root, r)["test/ndcg@10"] for r in SEED_RUNS]
    mean = sum(vals) / 3
    sd = math.sqrt(sum((v - mean) ** 2 for v in vals) / 2)  # sample sd
    entry = board["gts"]["models"]["gpt2_content"]
    assert entry["runs"] == SEED_RUNS and entry["seeds"] == [42, 1, 2]
    assert entry["metrics"]["test/ndcg@10"] == pytest.approx(mean, abs=1e-6)
    assert entry["sd"]["test/ndcg@10"] == pytest.approx(sd, abs=1e-6)
    text = protocol_section(md, "gts")
    head, rows = table(section(text, "### Leaderboard (test)"))
    row = next(r for r in rows if r[0].startswith("gpt2_content "))
    assert row[0] == "gpt2_content (3 seeds)" and not any(r[0].startswith("gpt2_content_s") for r in rows)
    assert row[head.index("NDCG@10")].rstrip("†") == f"{mean:.4f} ± {sd:.4f}"
    assert "6 models from 8 runs: 1 with 3 seeds" in text and "one seed each (seed 42)" not in text
    assert "2 models, one seed each (seed 42)" in protocol_section(md, "loo")
    assert ("Seeds: `gpt2_content` = mean of `gpt2_content` (seed 42), `gpt2_content_s1` (seed 1), "
            "`gpt2_content_s2` (seed 2).") in text
    _, rows = table(section(md, "### Seeds"))
    assert rows == [["`gts`", "`gpt2_content`", "3", f"{mean:.4f}", f"{sd:.4f}", f"{sd / mean:.1%}"]]


def test_seed_model_is_tested_on_seed_averaged_per_user_values(study):
    root, _, _, board = study
    base = _per_user(root, "sasrec_id")
    averaged = np.mean([_per_user(root, r) for r in SEED_RUNS], axis=0)  # (U,): per user, the mean over seeds
    expected = paired_test(base, averaged, 200, 0.05, 0)
    t = comp_is(board, "gts", "gpt2_content", "test/ndcg@10")
    assert t["users"] == N_TEST and t["against"] == "sasrec_id"
    for k in ("baseline", "model", "diff", "ci_low", "ci_high", "p_value"):
        assert t[k] == pytest.approx(expected[k], abs=1e-6), k
    one_seed = paired_test(base, _per_user(root, "gpt2_content"), 200, 0.05, 0)
    assert t["p_value"] != pytest.approx(one_seed["p_value"])  # not the named seed alone


def test_cold_slice_tests_are_against_the_cold_baseline(study):
    _, edits, md, board = study
    cold, comp = edits["cold"], board["gts"]["comparisons"]
    t = comp["sasrec_content_plus_id"]["test/cold_target/hr@10"]
    # the cold baseline hits its COLD_PROMOTED cold targets; the ID baseline hits none (0 by construction)
    assert t["against"] == "sasrec_content" and t["baseline"] == pytest.approx(COLD_PROMOTED / cold.sum(), abs=1e-6)
    assert comp["sasrec_id"]["test/cold_target/hr@10"]["diff"] == pytest.approx(-COLD_PROMOTED / cold.sum(), abs=1e-6)
    assert "test/cold_target/hr@10" not in comp["sasrec_content"]  # the reference itself
    assert comp["sasrec_content"]["test/hr@10"]["against"] == "sasrec_id"  # all users: still the baseline
    _, rows = table(section(protocol_section(md, "gts"), "### Leaderboard (test)"))
    assert [r[0] for r in rows if "(cold baseline)" in r[0]] == ["sasrec_content (cold baseline)"]
    loo = board["loo"]["comparisons"]  # no content model in loo: no cold-slice tests, and the report says so
    assert not [k for tests in loo.values() for k in tests if "cold_target" in k]
    assert "(report.cold_baseline) in this protocol: no cold-slice tests." in protocol_section(md, "loo")


def test_cold_start_control_tables(study):
    _, edits, md, board = study
    text = section(protocol_section(md, "gts"), "### Cold-start control (test)")
    models, comp = board["gts"]["models"], board["gts"]["comparisons"]
    placing = {m for m, e in models.items() if e["metrics"]["test/cold_pool/untrained/cold_slots@10"] > 0}
    assert placing == models_in("gts") - {"sasrec_id", "gpt2_id"}  # the ID models' lists hold no cold item
    n_known = int(np.isin(_truth(2, N_TEST)["target"], [46, 47, 48]).sum())
    for pool, n_items, n_targets in (("untrained", 5, edits["cold"].sum()), ("known_at_test", 3, n_known)):
        part = text.split(f"**Pool `{pool}`**: ")[1]
        assert part.startswith(f"{n_items} items, {n_targets} reachable test targets.")
        head, rows = table(part)
        assert {r[0].split()[0] for r in rows} == placing
        for r in rows:
            name, pre = r[0].split()[0], f"test/cold_pool/{pool}"
            ev = models[name]["metrics"]
            for m in ("hr@10", "ndcg@10"):
                model, control = ev[f"{pre}/model/{m}"], ev[f"{pre}/control/{m}"]
                assert r[head.index(f"lift {m.upper()}")] == f"{model / control:.2f}x"
                assert number(r[head.index(m.upper())]) == pytest.approx(model, abs=5e-5)
                if m == "ndcg@10" or len(models[name]["runs"]) > 1:  # hits of one seed only: the exact test
                    assert f"{pre}/{m}" not in comp.get(name, {})
                    continue
                t = comp[name][f"{pre}/{m}"]  # the model's hits vs the control's Poisson-binomial
                assert t["against"] == "control" and t["users"] == ev[f"{pre}/targets"] == n_targets
                assert t["model"] == pytest.approx(model, abs=1e-6)
                assert t["baseline"] == pytest.approx(control, abs=1e-5)  # the control column is float32
    # the content model hits exactly its promoted cold targets
    assert models["sasrec_content_plus_id"]["metrics"]["test/cold_pool/untrained/model/hr@10"] == pytest.approx(
        edits["cold"][edits["misses"]].sum() / edits["cold"].sum(), abs=1e-6)
    # 8 of 14 reachable targets hit where chance gives 2.2: far outside the control's Poisson-binomial
    assert "Significantly above their control on pool `untrained`: `sasrec_content_plus_id` (HR@10)." in text
    assert "Not shown (no item of pool `untrained` in any list): `sasrec_id`, `gpt2_id`." in text
    assert "NDCG@10): `sasrec_content` b = 1.5." in text  # the one run with a cold shift, and only it
    loo = section(protocol_section(md, "loo"), "### Cold-start control (test)")
    assert "**Pool `untrained`**" in loo and "known_at_test" not in loo  # leave-one-out has no T_test


def _all_tests(entry: dict) -> list[dict]:
    return [t for tests in entry["comparisons"].values() for t in tests.values()]


def test_holm_family_is_a_param(study):
    inp = _inputs(study[0])
    by_protocol = render(inp, ReportConfig(n_bootstrap=50), {}).leaderboard
    whole = render(inp, ReportConfig(n_bootstrap=50, family="report"), {})
    sizes = {p: len(_all_tests(e)) for p, e in by_protocol.items()}
    assert all(by_protocol[p]["holm_tests"] == n for p, n in sizes.items())
    everything = [t for p in sorted(whole.leaderboard) for t in _all_tests(whole.leaderboard[p])]
    assert len(everything) == sum(sizes.values()) and len(sizes) == 3
    assert all(e["holm_tests"] == len(everything) and e["family"] == "report" for e in whole.leaderboard.values())
    assert [t["p_holm"] for t in everything] == pytest.approx(holm([t["p_value"] for t in everything]))
    narrow = [t["p_holm"] for p in sorted(by_protocol) for t in _all_tests(by_protocol[p])]
    assert all(w >= n for w, n in zip((t["p_holm"] for t in everything), narrow, strict=True))
    assert any(w > n for w, n in zip((t["p_holm"] for t in everything), narrow, strict=True))
    assert f"Holm-adjusted over all {len(everything)} tests of this report" in whole.markdown
    assert f"Holm-adjusted over all {sizes['gts']} tests of this protocol" in render(
        inp, ReportConfig(n_bootstrap=50), {}).markdown


def test_control_sentence_names_the_significant_models(study):
    inp = _inputs(study[0])
    rep = render(inp, ReportConfig(n_bootstrap=50, alpha=0.5), {})  # a loose alpha: some tests pass
    comp = rep.leaderboard["gts"]["comparisons"]
    above = {m for m, tests in comp.items() for k, t in tests.items()
             if k.startswith("test/cold_pool/untrained/") and t["significant"] and t["diff"] > 0}
    assert above
    line = next(ln for ln in protocol_section(rep.markdown, "gts").splitlines()
                if "above their control on pool `untrained`" in ln)
    assert set(re.findall(r"`(\w+)` \(", line)) == above


def test_bad_report_params_name_the_key():
    from lib.config import ConfigError, from_dict
    with pytest.raises(ConfigError, match=r"report\.family: 'run' is not one of"):
        from_dict(ReportConfig, {"family": "run"}, "report")
    with pytest.raises(ConfigError, match=r"report\.cold_baseline: unknown key\(s\) \['rep'\]"):
        from_dict(ReportConfig, {"cold_baseline": {"backbone": "sasrec", "rep": "content"}}, "report")
    with pytest.raises(ValueError, match="family"):
        ReportConfig(family="run").validate()
    with pytest.raises(ConfigError, match=r"report\.significance_metrics: must name at least one"):
        from_dict(ReportConfig, {"significance_metrics": []}, "report")


def test_protocol_effects(study):
    _, edits, md, board = study
    text = section(md, "## Protocol effects")
    ties = section(text, "### Same-day ties")
    _, rows = table(ties)
    assert rows == [["`gts`", "file_order", "0.3000", "0.2500"], ["`gts_random_ties`", "random", "0.3100", "0.2600"],
                    ["`loo`", "file_order", "0.1000", "0.1200"]]
    head, rows = table(ties[ties.index("| models (seeds)"):])
    assert [r[:2] for r in rows] == [["`sasrec_content` (1) / `sasrec_content_rt` (1)", "`gts` / `gts_random_ties`"],
                                     ["`sasrec_id` (1) / `sasrec_id_rt` (1)", "`gts` / `gts_random_ties`"]]
    base = np.where(edits["base_ranks"] <= 10, 1 / np.log2(edits["base_ranks"] + 1), 0).mean()
    lost = sum(1 / math.log2(r + 1) for r in edits["base_ranks"][edits["hits"]]) / N_TEST  # sasrec_id_rt: 2 hits less
    assert rows[1][2:5] == [f"{base:.4f}", f"{base - lost:.4f}", f"{-lost / base:+.0%}"]
    assert rows[0][4] == "+0%"  # the same lists under both tie orders
    assert f"test NDCG@10 changes by {-lost / base:+.0%} to +0% over 2 model pair(s)." in ties
    _, rows = table(section(text, "### Cold pools"))
    assert rows[0] == ["`gts`", "`untrained`", "5", str(edits["cold"].sum()), f"{edits['cold'].mean():.1%}"]
    assert rows[1][:3] == ["`gts`", "`known_at_test`", "3"] and rows[-1][:3] == ["`loo`", "`untrained`", "5"]
    _, rows = table(section(text, "### Repeat targets"))
    assert rows == [["`gts`", "3", str(N_VAL), "2", str(N_TEST)],
                    ["`gts_random_ties`", "3", str(N_VAL), "2", str(N_TEST)]]


def test_protocol_effects_without_data_say_so(study):
    inp = _inputs(study[0])  # no split metrics
    for run in SEEDS:  # one seed per model
        for d in (inp.runs, inp.evals, inp.per_user, inp.train):
            d.pop(run)
    inp.evals = {r: {k: v for k, v in ev.items() if "/cold_pool/" not in k} for r, ev in inp.evals.items()}
    md = render(inp, ReportConfig(n_bootstrap=20), {}).markdown
    text = section(md, "## Protocol effects")
    for sentence in ("No protocol's split metrics record the tie order", "No evaluation reports cold pools",
                     "Every model has one seed", "No protocol's split metrics count repeat targets"):
        assert sentence in text
    assert "|" not in text  # no empty tables
    assert "No cold-pool metrics in this protocol's evaluations" in protocol_section(md, "gts")


# --- (g) the decoding benchmark's section (stage `decoding`, optional) ---------------------------------------

DECODING = {"run": "gpt2_sid", "split": "val", "seed": 0, "users": 1000, "threads": 1, "precision": "bf16-mixed",
            "exclude_seen": True, "trie_softmax": True, "batch_size": 16, "cold_rule": "off", "methods": {
                "beam@100": {"decoder": "ours", "width": 100, "constrained": True, "ndcg@10": 0.0241, "hr@10": 0.043,
                             "hr@100": 0.131, "invalid_id_rate": 0.0, "distinct_items@10": 4321, "generated": 100000,
                             "seconds": 15.0, "users_per_second": 66.6},
                "hf_unconstrained@10": {"decoder": "hf", "width": 10, "constrained": False, "ndcg@10": 0.0101,
                                        "hr@10": 0.02, "hr@100": 0.02, "invalid_id_rate": 0.125,
                                        "distinct_items@10": 2000, "generated": 10000, "seconds": 20.0,
                                        "users_per_second": 50.0}}}


def test_decoding_section_is_appended_only_when_the_file_is_given(study, fresh):
    """Without --decoding the report is the report of before; with it, the same text plus the section."""
    _, _, markdown, board = study
    assert "Decoding" not in markdown
    _json(DECODING, fresh / "decoding.json")
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(STAGES))
        mp.setattr(sys, "argv", _argv(fresh) + ["--decoding", str(fresh / "decoding.json")])
        importlib.import_module("stages.report").main()
    md = (fresh / "reports/RESULTS.md").read_text()
    assert md.startswith(markdown) and md != markdown
    assert json.loads((fresh / "reports/leaderboard.json").read_text()) == board
    text = section(md, "## Decoding (validation)")
    assert "`gpt2_sid` on 1000 validation users" in text and "`bf16-mixed`" in text and "1 torch thread," in text
    head, rows = table(text)
    assert head[:4] == ["method", "decoder", "width", "trie"] and len(head) == len(rows[0])
    assert rows == [["beam@100", "ours", "100", "yes", "0.0241", "0.0430", "0.1310", "0.0000", "4321", "66.6", "–"],
                    ["hf_unconstrained@10", "hf", "10", "no", "0.0101", "0.0200", "0.0200", "0.1250", "2000", "50.0",
                     "–"]]


def test_decoding_flag_naming_a_missing_file_is_an_error(fresh):
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(STAGES))
        mp.setattr(sys, "argv", _argv(fresh) + ["--decoding", str(fresh / "nope.json")])
        with pytest.raises(SystemExit, match="run stage `decoding` first"):
            importlib.import_module("stages.report").main()


def test_representation_grid_keeps_codes_of_other_tokenizers_apart():
    """Two code rankers that differ in tokenizer (and one in a `set` override) are two rows, not one cell."""
    from lib.report.tables import representation_grid
    runs = {"a_id": {"family": "rankers", "representation": "id", "backbone": "sasrec"},
            "a_rq": {"family": "code_rankers", "representation": "sid_unigram", "tokenizer": "rqvae",
                     "backbone": "sasrec"},
            "a_opq": {"family": "code_rankers", "representation": "sid_unigram", "tokenizer": "opq",
                      "backbone": "sasrec", "overrides": {"model.code_pool": "mean"}}}
    evals = {"a_id": {"test/ndcg@10": 0.02, "test/cold_target/hr@10": 0.0},
             "a_rq": {"test/ndcg@10": 0.01, "test/cold_target/hr@10": 0.0},
             "a_opq": {"test/ndcg@10": 0.03, "test/cold_target/hr@10": 0.0}}
    rows = [line.split(" | ")[:2] for line in representation_grid(list(runs), Models(runs=runs, evals=evals))[2:]]
    assert rows == [["| sid_unigram (opq)", "0.0300"], ["| id", "0.0200"], ["| sid_unigram (rqvae)", "0.0100"]]


def test_generator_grid_rows_are_tokenizer_methods_and_cells_chosen_on_validation():
    """TIGER-style and RPG runs of one method share a row; of two runs in a cell the better on validation is
    shown (not the better on test), and a run with `set` overrides is a cell only where no run without
    overrides is, its overrides named."""
    from lib.report.tables import generator_grid
    runs = {"g_rq": {"family": "generators", "tokenizer": "rqvae", "n_levels": 4},
            "g_rq_div": {"family": "generators", "tokenizer": "rqvae_diversity", "n_levels": 4},
            "g_rq_seed": {"family": "generators", "tokenizer": "rqvae", "n_levels": 4, "overrides": {"x": 1}},
            "g_km": {"family": "generators", "tokenizer": "rqkmeans", "n_levels": 4},
            "p_km": {"family": "parallel_generators", "tokenizer": "rqkmeans32", "n_levels": 32},
            "p_opq": {"family": "parallel_generators", "tokenizer": "opq", "n_levels": 32},
            "p_rand": {"family": "parallel_generators", "tokenizer": "random32", "n_levels": 32,
                       "overrides": {"model.digit_init": "random"}},
            "r_id": {"family": "rankers"}}
    method = {"g_rq": "rqvae", "g_rq_div": "rqvae", "g_rq_seed": "rqvae", "g_km": "rqkmeans", "p_km": "rqkmeans",
              "p_opq": "opq", "p_rand": "random"}
    train = {r: {"method": m, "n_levels": 4} | ({"digits": 32, "codebook_size": 256} if r.startswith("p_") else {})
             for r, m in method.items()}
    ev = {"g_rq": (0.010, 0.020), "g_rq_div": (0.020, 0.015), "g_rq_seed": (0.5, 0.5), "g_km": (0.011, 0.01),
          "p_km": (0.012, 0.01), "p_opq": (0.030, 0.02), "p_rand": (0.004, 0.003), "r_id": (0.9, 0.9)}  # (val, test)
    evals = {r: {"val/ndcg@10": v, "test/ndcg@10": t, "test/cold_target/hr@10": 0.001} for r, (v, t) in ev.items()}
    lines = generator_grid(list(runs), Models(runs=runs, evals=evals, train=train))
    assert lines[0].count("NDCG@10") == 2  # one column group per generator family
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:]]
    by_method = {r[0]: r for r in rows}
    assert [r[0] for r in rows] == ["opq", "rqvae", "rqkmeans", "random"]  # best test NDCG@10 of the row first
    assert by_method["rqvae"][1:4] == ["0.0150", "0.0010", "rqvae_diversity: 3 levels + collision"]  # val 0.02 > 0.01
    assert by_method["rqkmeans"][1] == "0.0100" and by_method["rqkmeans"][4:7] == ["0.0100", "0.0010",
                                                                                  "rqkmeans32: 32 x 256"]
    assert by_method["opq"][1:4] == ["–", "–", "–"] and by_method["opq"][4] == "0.0200"
    # the only random-code run has overrides: shown, and named as such (g_rq_seed, beaten by plain runs, is not)
    assert by_method["random"][4:7] == ["0.0030", "0.0010", "random32: 32 x 256 (set model.digit_init=random)"]


def _content_models() -> Models:
    """Content runs on data/embed and on two other item vectors (run.json `vectors`), plus an ID run."""
    runs = {"s_cpi": {"family": "content_rankers", "backbone": "sasrec", "representation": "content_plus_id"},
            "s_cpi_drop": {"family": "content_rankers", "backbone": "sasrec", "representation": "content_plus_id",
                           "overrides": {"model.id_dropout": 0.5}},
            "s_cpi_title": {"family": "content_rankers", "backbone": "sasrec", "representation": "content_plus_id",
                            "vectors": "title"},
            "s_cpi_wl": {"family": "content_rankers", "backbone": "sasrec", "representation": "content_plus_id",
                         "vectors": "wordllama"},
            "a_c_title": {"family": "content_rankers", "backbone": "sasrec", "representation": "content",
                          "vectors": "title"},
            "s_c": {"family": "content_rankers", "backbone": "sasrec", "representation": "content"},
            "s_id": {"family": "rankers", "backbone": "sasrec", "representation": "id"}}
    ev = {"s_cpi": (0.020, 0.0, 0.030), "s_cpi_drop": (0.5, 0.5, 0.5), "s_cpi_title": (0.025, 0.001, 0.028),
          "s_cpi_wl": (0.015, 0.0, 0.020), "a_c_title": (0.010, 0.020, 0.012), "s_c": (0.012, 0.010, 0.010),
          "s_id": (0.018, 0.0, 0.030)}  # test NDCG@10, cold HR@10, val NDCG@10: validation and test disagree
    return Models(runs=runs, evals={r: {"test/ndcg@10": n, "test/cold_target/hr@10": c, "val/ndcg@10": v}
                                    for r, (n, c, v) in ev.items()})


def test_representation_label_and_grid_keep_item_vectors_apart():
    from lib.report.tables import representation, representation_grid
    assert representation({"representation": "content_plus_id", "vectors": "title"}) == "content_plus_id [title]"
    assert representation({"representation": "content_plus_id", "tokenizer": None}) == "content_plus_id"
    assert representation({"representation": "sid_unigram", "tokenizer": "opq"}) == "sid_unigram (opq)"
    models = _content_models()
    rows = [line.split(" | ")[:2] for line in representation_grid(list(models.runs), models)[2:]]
    assert rows == [["| content_plus_id [title]", "0.0250"], ["| content_plus_id", "0.0200"], ["| id", "0.0180"],
                    ["| content_plus_id [wordllama]", "0.0150"], ["| content", "0.0120"],
                    ["| content [title]", "0.0100"]]


def test_content_table_compares_item_vectors_with_data_embed():
    from lib.report.protocol import content_section
    from lib.report.tables import content_rows
    models = _content_models()
    lines = content_rows(list(models.runs), models)
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in lines[2:] if line.startswith("|")]
    assert rows == [["sasrec content", "title", "`a_c_title`", "0.0120", "0.0100", "-17%", "0.0200", "+100%"],
                    ["sasrec content", "embed", "`s_c`", "0.0100", "0.0120", "–", "0.0100", "–"],
                    ["sasrec content_plus_id", "embed", "`s_cpi`", "0.0300", "0.0200", "–", "0.0000", "–"],
                    ["sasrec content_plus_id", "title", "`s_cpi_title`", "0.0280", "0.0250", "+25%", "0.0010",
                     "n/a (baseline is 0)"],
                    ["sasrec content_plus_id", "wordllama", "`s_cpi_wl`", "0.0200", "0.0150", "-25%", "0.0000",
                     "n/a (baseline is 0)"]]  # best on validation first; runs with `set` overrides left out
    # the choice is made on validation, even where test would pick other vectors
    assert ("- sasrec content: chosen on validation `title` (`a_c_title`, val NDCG@10 0.0120; test 0.0100, "
            "-17% vs `embed`)") in lines
    assert ("- sasrec content_plus_id: chosen on validation `embed` (`s_cpi`, val NDCG@10 0.0300; test 0.0200)"
            in lines)
    assert content_section(list(models.runs), models)[0] == "### Content representations (test)"
    plain = [r for r in models.runs if not models.runs[r].get("vectors")]
    assert content_rows(plain, models) == [] and content_section(plain, models) == []  # no section without them


def test_references_and_protocol_pairs_use_the_default_item_vectors():
    """The cold baseline (sasrec content) is the run on data/embed, even when a run on other vectors sorts
    first by name; a random-tie run on data/embed is paired with its file-order twin, not with a run on other
    vectors."""
    from lib.report.config import Baseline
    from lib.report.effects import tie_pairs
    from lib.report.models import reference_of
    models = _content_models()
    assert reference_of(list(models.runs), models, Baseline("sasrec", "content")) == "s_c"
    models.runs["s_c_rt"] = dict(models.runs["s_c"])
    splits = {p: {"type": "global_temporal", "t_val": 1, "t_test": 2, "retrain_on_validation": False,
                  "tie_break": t} for p, t in (("gts", "file_order"), ("rt", "random"))}
    pairs = tie_pairs({"gts": [r for r in models.runs if r != "s_c_rt"], "rt": ["s_c_rt"]}, models, splits)
    assert pairs == [("gts", "s_c", "rt", "s_c_rt")]


def test_refit_pairs_twin_tokenizers_and_table():
    """The final-refit section pairs each model with its refit twin only: the same tokenizer fit on the refit
    split (rqvae -> rqvae_refit), never another tokenizer of the same representation, never across tie orders."""
    from lib.report.effects import protocol_pairs, refit_effects
    gen = {"family": "generators", "backbone": "gpt2", "representation": "sid"}
    runs = {"s_id": {"family": "rankers", "backbone": "sasrec", "representation": "id"},
            "g": gen | {"tokenizer": "rqvae"}, "g_collab": gen | {"tokenizer": "rqvae_collab"},
            "g_lsh": gen | {"tokenizer": "lsh"}, "g_rt": gen | {"tokenizer": "rqvae_random_ties"}}
    runs |= {"s_id_refit": runs["s_id"], "g_refit": gen | {"tokenizer": "rqvae_refit"}}
    ev = {"s_id": (0.020, 0.040, 0.0), "s_id_refit": (0.030, 0.050, 0.0), "g": (0.010, 0.020, 0.010),
          "g_refit": (0.015, 0.018, 0.020), "g_collab": (0.5, 0.5, 0.5), "g_lsh": (0.4, 0.4, 0.4),
          "g_rt": (0.3, 0.3, 0.3)}
    models = Models(runs=runs, evals={r: {"test/ndcg@10": n, "test/hr@10": h, "test/cold_target/hr@10": c}
                                      for r, (n, h, c) in ev.items()},
                    train={"s_id_refit": {"retrained_on_validation_epochs": 7},
                           "g_refit": {"retrained_on_validation_epochs": 9}})
    split = {"type": "global_temporal", "t_val": 1, "t_test": 2, "retrain_on_validation": False,
             "tie_break": "file_order"}
    splits = {"gts": split, "gts_refit": split | {"retrain_on_validation": True},
              "gts_random_ties": split | {"tie_break": "random"}}
    by_protocol = {"gts": ["s_id", "g", "g_collab", "g_lsh"], "gts_refit": ["s_id_refit", "g_refit"],
                   "gts_random_ties": ["g_rt"]}
    pairs = protocol_pairs(by_protocol, models, splits, "retrain_on_validation", False, True)
    assert pairs == [("gts", "g", "gts_refit", "g_refit"), ("gts", "s_id", "gts_refit", "s_id_refit")]
    assert protocol_pairs(by_protocol, models, splits, "tie_break", "file_order", "random") == [
        ("gts", "g", "gts_random_ties", "g_rt")]
    lines = refit_effects(by_protocol, models, splits)
    rows = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines if ln.startswith("| `")]
    assert rows == [["`g` (1) / `g_refit` (1)", "`gts` / `gts_refit`", "0.0100", "0.0150", "+50%", "0.0200",
                     "0.0180", "-10%", "0.0100", "0.0200", "+100%", "9"],
                    ["`s_id` (1) / `s_id_refit` (1)", "`gts` / `gts_refit`", "0.0200", "0.0300", "+50%", "0.0400",
                     "0.0500", "+25%", "0.0000", "0.0000", "n/a (baseline is 0)", "7"]]
    assert "With the final refit, test NDCG@10 changes by +50% to +50% over 2 model pair(s)." in lines
    assert "not measured" in refit_effects({"gts": ["s_id"]}, models, splits)[0]
