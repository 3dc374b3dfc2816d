"""stages/report.py + lib/report/: RESULTS.md and its appendices from committed-style files, end to end.

The fixture writes what the training, evaluation and split stages commit (run.json, ranks.parquet,
metrics/{eval,train,tokenizers,split}, dvclive curves, code-usage tables) for two protocol versions: runs
of the current protocol (issue 29: protocol_version 2, rules, unreachable targets, the knowable cold pool)
under gts, gts_file_order, gts_ties1 and loo, and pre-#29 runs (no protocol_version, the old pools) under
gts, gts_refit and loo. Per-user ranks are drawn with a chosen hit rate per model, and the eval metrics are
computed from them, so they agree as in the pipeline. Everything is written under pytest's tmp_path: no
synthetic figure ever reaches reports/.
"""
from __future__ import annotations

import importlib
import json
import re
import shutil
import sys
import zlib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lib.evaluate import loaded_ranks
from lib.metrics import per_user_metrics
from lib.report import ReportConfig, ReportInputs, render
from lib.significance import benjamini_hochberg, holm

ROOT = Path(__file__).resolve().parent.parent
STAGES = ROOT / "stages"
N_TEST, N_VAL, KS = 240, 180, (5, 10, 20)
CURRENT, OLD = 2, None  # run.json protocol_version (None: the key is absent, a pre-#29 run)
# name -> (family, backbone, representation, tokenizer, protocol, version, seeds, p_val, p_test, p_cold, rules)
# p_val / p_test: chance that the target is in the top 20 (validation / test); p_cold: on knowable cold targets
# (None: the model never places a cold item, as an ID model)
RUNS = {
    "sasrec_id": ("rankers", "sasrec", "id", None, "gts", CURRENT, (42, 1, 2), 0.30, 0.25, None, []),
    "gpt2_id": ("rankers", "gpt2", "id", None, "gts", CURRENT, (42, 1, 2), 0.28, 0.25, None, []),
    "sasrec_content_plus_id": ("content_rankers", "sasrec", "content_plus_id", None, "gts", CURRENT, (42, 1, 2),
                               0.40, 0.50, None, []),
    "sasrec_content": ("content_rankers", "sasrec", "content", None, "gts", CURRENT, (42,), 0.15, 0.15, 0.5, []),
    "gpt2_content": ("content_rankers", "gpt2", "content", None, "gts", CURRENT, (42,), 0.45, 0.20, 0.3, []),
    "gpt2_content_plus_id": ("content_rankers", "gpt2", "content_plus_id", None, "gts", CURRENT, (42,), 0.20, 0.55,
                             None, []),
    "gpt2_sid": ("generators", "gpt2", "sid", "rqvae", "gts", CURRENT, (42,), 0.22, 0.20, 0.1, []),
    "gpt2_sid_lsh": ("generators", "gpt2", "sid", "lsh", "gts", CURRENT, (42,), 0.12, 0.10, 0.1, []),
    "rpg_opq": ("parallel_generators", "gpt2", "sid_parallel", "opq", "gts", CURRENT, (42,), 0.26, 0.22, None, []),
    # a list rule with the best scores of all: never a model
    "sasrec_content_plus_id_shift": ("content_rankers", "sasrec", "content_plus_id", None, "gts", CURRENT, (42,),
                                     0.95, 0.95, 0.9, ["cold_shift"]),
    "sasrec_id_fo": ("rankers", "sasrec", "id", None, "gts_file_order", CURRENT, (42,), 0.32, 0.30, None, []),
    "sasrec_id_t1": ("rankers", "sasrec", "id", None, "gts_ties1", CURRENT, (42,), 0.30, 0.24, None, []),
    "sasrec_id_loo": ("rankers", "sasrec", "id", None, "loo", CURRENT, (42,), 0.60, 0.55, None, []),
    # pre-#29 runs
    "sasrec_id_old": ("rankers", "sasrec", "id", None, "gts", OLD, (42,), 0.33, 0.28, None, []),
    "sasrec_sid_unigram_old": ("code_rankers", "sasrec", "sid_unigram", "rqvae", "gts", OLD, (42,), 0.2, 0.2, 0.05,
                               []),
    "gpt2_sid_old": ("generators", "gpt2", "sid", "rqvae", "gts", OLD, (42,), 0.9, 0.9, 0.9, []),  # TIGER's rule
    "sasrec_shift_old": ("content_rankers", "sasrec", "content_plus_id", None, "gts", OLD, (42,), 0.9, 0.9, 0.9,
                         []),  # cold_shift in its training metrics
    "sasrec_id_refit_old": ("rankers", "sasrec", "id", None, "gts_refit", OLD, (42,), 0.3, 0.35, None, []),
    "sasrec_id_loo_old": ("rankers", "sasrec", "id", None, "loo", OLD, (42,), 0.6, 0.6, None, []),
}
RULE_RUNS = {"sasrec_content_plus_id_shift", "gpt2_sid_old", "sasrec_shift_old"}
PARAMS = """report:
  protocol: gts
  protocol_version: 2
  questions:
    content:
      title: Does content help?
      models: [sasrec_id, sasrec_content, sasrec_content_plus_id, gpt2_id, gpt2_content, gpt2_content_plus_id,
               sasrec_content_plus_id_shift, not_trained_yet]
      references: [sasrec_id, gpt2_id]
    sid_features:
      title: Semantic IDs as features?
      models: [sasrec_id, sasrec_id_old, sasrec_sid_unigram_old]
      references: [sasrec_id, sasrec_id_old]
    generative:
      title: Generative retrieval?
      models: [sasrec_id, gpt2_sid, rpg_opq]
      references: [sasrec_id]
    tokenizers:
      title: Which tokenizer?
      models: [gpt2_sid, gpt2_sid_lsh, rpg_opq]
      references: [gpt2_sid, rpg_opq]
    cold_start:
      title: Cold-start targets?
      models: [sasrec_content, sasrec_id, sasrec_content_plus_id, gpt2_content, gpt2_sid]
      references: [sasrec_content]
      target: cold
  confirmatory:
    - [sasrec_content_plus_id, sasrec_id]
    - [gpt2_id, sasrec_id]
    - [gpt2_sid, sasrec_id]
    - [sasrec_content, sasrec_id]
    - [not_trained_yet, sasrec_id]
  n_bootstrap: 200
  published:
    - {model: Paper SASRec, ndcg@10: 0.05, hr@10: 0.1, source: "Someone 2025", scopes: [gts_file_order],
       like: {backbone: sasrec, representation: id}}
    - {model: Paper LOO, ndcg@10: 0.2, hr@10: 0.3, source: "Other 2024", scopes: [loo]}
"""
SPLITS = {
    "gts": {"type": "global_temporal", "tie_break": "random", "tie_seed": 0, "catalogue": "known_at_cutoff"},
    "gts_file_order": {"type": "global_temporal", "tie_break": "file_order", "catalogue": "known_at_cutoff"},
    "gts_ties1": {"type": "global_temporal", "tie_break": "random", "tie_seed": 1, "catalogue": "known_at_cutoff"},
    "loo": {"type": "leave_one_out", "tie_break": "random", "tie_seed": 0, "catalogue": "whole"},
    "gts_refit": {"type": "global_temporal", "tie_break": "file_order", "retrain_on_validation": True},  # pre-#29
}


def flags(protocol: str, version) -> pd.DataFrame:
    """Test users of a protocol: ids, knowable cold targets, unreachable targets (current protocol only)."""
    first = 1000 if protocol == "loo" else 0
    u = np.arange(first, first + N_TEST)
    unreachable = (u % 10 == 0) if version == CURRENT and protocol != "loo" else np.zeros(N_TEST, bool)
    knowable = (u % 7 == 1) & ~unreachable
    future = (u % 5 == 2) & ~knowable if version == OLD else np.zeros(N_TEST, bool)  # pre-#29: future-selected pool
    return pd.DataFrame({"user": u, "knowable": knowable, "unreachable": unreachable, "future": future,
                         "user_cold": u % 4 == 0, "history_length": (u % 23 + 1).astype(np.int16)})


def draw(name: str, seed: int, n: int, p: float, cold: np.ndarray, p_cold, blocked: np.ndarray) -> np.ndarray:
    """(n,) stored ranks: a hit in the top 20 with chance p (p_cold on cold targets), 0 = miss."""
    rng = np.random.default_rng(zlib.crc32(f"{name}/{seed}/{n}".encode()))
    chance = np.where(cold, p_cold or 0.0, p)
    hit = (rng.random(n) < chance) & ~blocked
    return np.where(hit, rng.integers(1, 21, n), 0).astype(np.int16)


def per_user_file(name: str, seed: int, spec: tuple) -> pd.DataFrame:
    _, _, _, _, protocol, version, _, p_val, p_test, p_cold, _ = spec
    f = flags(protocol, version)
    cold_all = f["knowable"].to_numpy() | f["future"].to_numpy()
    test = pd.DataFrame({"split": "test", "user": f["user"].to_numpy(np.int32),
                         "rank": draw(name, seed, N_TEST, p_test, cold_all, p_cold, f["unreachable"].to_numpy()),
                         "target_cold": cold_all, "user_cold": f["user_cold"].to_numpy(),
                         "history_length": f["history_length"].to_numpy()})
    val = pd.DataFrame({"split": "val", "user": np.arange(N_VAL, dtype=np.int32) + 5000,
                        "rank": draw(name, seed, N_VAL, p_val, np.zeros(N_VAL, bool), None, np.zeros(N_VAL, bool)),
                        "target_cold": False, "user_cold": False, "history_length": np.int16(3)})
    ctl = (0.02 if p_cold else 0.0)
    pools = {"knowable": f["knowable"].to_numpy()} if version == CURRENT else \
        {"untrained": cold_all, "known_at_test": f["knowable"].to_numpy()}
    frame = pd.concat([val, test], ignore_index=True)
    if version == CURRENT:
        frame["target_unreachable"] = np.r_[np.zeros(N_VAL, bool), f["unreachable"].to_numpy()]
    for pool, mask in pools.items():
        frame[f"pool_{pool}"] = np.r_[np.zeros(N_VAL, bool), mask]
        frame[f"control_{pool}/hr@10"] = np.r_[np.zeros(N_VAL), np.where(mask, ctl, 0.0)].astype(np.float32)
        frame[f"control_{pool}/ndcg@10"] = np.r_[np.zeros(N_VAL), np.where(mask, ctl / 2, 0.0)].astype(np.float32)
    frame["split"] = frame["split"].astype("category")
    return frame


def eval_metrics(name: str, protocol: str, frame: pd.DataFrame, p_cold) -> dict:
    """The eval metrics of one run, computed from its per-user file as lib/evaluate.py does."""
    out = {"run": name, "protocol": protocol}
    for split in ("val", "test"):
        f = frame[frame["split"] == split]
        m = per_user_metrics(loaded_ranks(f["rank"].to_numpy()), KS)
        out[f"{split}/users"] = len(f)
        out |= {f"{split}/{c}": round(float(m[c].mean()), 6) for c in m.columns}
    t = frame[frame["split"] == "test"].reset_index(drop=True)
    m = per_user_metrics(loaded_ranks(t["rank"].to_numpy()), KS)
    un = t["target_unreachable"].to_numpy(bool) if "target_unreachable" in t else np.zeros(len(t), bool)
    cold = t["target_cold"].to_numpy(bool)
    for sl, mask in (("cold_target", cold), ("warm_target", ~cold & ~un), ("cold_user", t["user_cold"].to_numpy()),
                     ("warm_user", ~t["user_cold"].to_numpy())):
        out[f"test/{sl}/users"] = int(mask.sum())
        out |= {f"test/{sl}/{c}": round(float(m[c][mask].mean()), 6) for c in ("hr@10", "ndcg@10")}
    if "target_unreachable" in t:
        out["test/unreachable_target/users"] = int(un.sum())
    for pool in [c[5:] for c in t.columns if c.startswith("pool_")]:
        mask = t[f"pool_{pool}"].to_numpy(bool)
        out |= {f"test/cold_pool/{pool}/items": 30, f"test/cold_pool/{pool}/targets": int(mask.sum()),
                f"test/cold_pool/{pool}/cold_slots@10": 0.4 if p_cold else 0.0,
                f"test/cold_pool/{pool}/model/hr@10": round(float(m["hr@10"][mask].mean()), 6),
                f"test/cold_pool/{pool}/control/hr@10": round(float(t[f"control_{pool}/hr@10"][mask].mean()), 6)}
    return out


def _json(obj, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2) + "\n")


def build(root: Path) -> None:
    """Write the committed-style inputs of the report under `root`."""
    for i, (name, spec) in enumerate(RUNS.items()):
        family, backbone, rep, tok, protocol, version, seeds, _, _, p_cold, rules = spec
        for seed in seeds:
            run = name if seed == seeds[0] else f"{name}_s{seed}"
            info = {"name": run, "family": family, "backbone": backbone, "representation": rep, "tokenizer": tok,
                    "protocol": protocol, "n_levels": 4 if family == "generators" else None, "seed": seed,
                    "overrides": {} if seed == seeds[0] else {"train.seed": seed}}
            if version == CURRENT:
                info |= {"protocol_version": CURRENT, "rules": rules}
            frame = per_user_file(name, seed, spec)
            _json(info, root / "results" / run / "run.json")
            frame.to_parquet(root / "results" / run / "ranks.parquet", index=False)
            _json(eval_metrics(run, protocol, frame, p_cold), root / "metrics/eval" / f"{run}.json")
            train = {"best_epoch": 5 + i, "epochs": 9 + i, "seconds_per_epoch": 1.5, "train_seconds": 20.0 * (i + 1),
                     "peak_memory_mb": 300.0, "parameters": 1000 * (i + 1)}
            if name == "sasrec_shift_old":
                train["cold_shift"] = 1.5  # a pre-#29 cold shift: the only trace of that rule
            if family == "generators":
                train |= {"method": tok, "test/prefix_hr@10/codes1": 0.5, "test/prefix_hr@10/codes2": 0.3}
            _json(train, root / "metrics/train" / f"{run}.json")
            curves = root / "plots/train" / run / "plots/metrics"
            (curves / "val").mkdir(parents=True)
            steps = np.arange(4)
            pd.DataFrame({"step": steps, "ndcg@10": 0.01 * (steps + 1) + 0.001 * i}).to_csv(
                curves / "val/ndcg@10.tsv", sep="\t", index=False)
            pd.DataFrame({"step": steps, "epoch": steps}).to_csv(curves / "epoch.tsv", sep="\t", index=False)
    for name, levels in (("rqvae", 3), ("lsh", 3), ("opq", 32)):
        _json({"method": name, "protocol": "gts", "levels": levels, "collision_rate": 0.01, "largest_group": 2,
               **{f"level_{lv}": {"codes_used": 8, "perplexity": 6.0} for lv in range(levels)}},
              root / "metrics/tokenizers" / f"{name}.json")
        usage = pd.DataFrame([(lv, r, 20 - r) for lv in range(1, levels + 1) for r in range(1, 9)],
                             columns=["level", "rank", "items"])
        (root / "plots/tokenizers" / name).mkdir(parents=True)
        usage.to_csv(root / "plots/tokenizers" / name / "code_usage.csv", index=False)
    for protocol, facts in SPLITS.items():
        split = {"protocol": protocol, **facts, "test_users": N_TEST, "val_users": N_VAL}
        if "catalogue" in facts:
            f = flags(protocol, CURRENT)
            n = int(f["unreachable"].sum())
            split |= {"test_unreachable_targets": n, "test_unreachable_target_fraction": round(n / N_TEST, 4),
                      "test_cold_targets": int(f["knowable"].sum()), "val_unreachable_targets": 3,
                      "val_unreachable_target_fraction": round(3 / N_VAL, 4), "val_cold_targets": 1}
        _json(split, root / "metrics/split" / f"{protocol}.json")
    _json({"run": "gpt2_sid", "users": 100, "seed": 0, "threads": 1, "methods": {
        "beam@10": {"decoder": "ours", "width": 10, "constrained": True, "ndcg@10": 0.02, "hr@10": 0.04}}},
        root / "metrics/decoding.json")
    (root / "params.yaml").write_text(PARAMS)


def _argv(root: Path, out: str) -> list[str]:
    return ["report.py", "--results-dir", str(root / "results"), "--eval-metrics", str(root / "metrics/eval"),
            "--train-metrics", str(root / "metrics/train"), "--tokenizer-metrics", str(root / "metrics/tokenizers"),
            "--tokenizer-plots", str(root / "plots/tokenizers"), "--split-metrics", str(root / "metrics/split"),
            "--train-plots", str(root / "plots/train"), "--results", str(root / out / "RESULTS.md"),
            "--protocols-dir", str(root / out / "protocols"), "--figures-dir", str(root / out / "figures"),
            "--leaderboard", str(root / out / "leaderboard.json"), "--decoding", str(root / "metrics/decoding.json"),
            "--params", str(root / "params.yaml")]


def run_stage(root: Path, out: str = "out") -> tuple[str, dict[str, str], dict]:
    """stages/report.py's main in-process -> (RESULTS.md, {appendix name: text}, leaderboard.json)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(STAGES))  # stage scripts import `_common` as a sibling
        mp.setattr(sys, "argv", _argv(root, out))
        importlib.import_module("stages.report").main()
    apps = {f.stem: f.read_text() for f in sorted((root / out / "protocols").glob("*.md"))}
    return (root / out / "RESULTS.md").read_text(), apps, json.loads((root / out / "leaderboard.json").read_text())


def inputs(root: Path) -> ReportInputs:
    """The report's inputs read like the stage reads them (without curves and figures)."""
    runs = {d.name: json.loads((d / "run.json").read_text()) for d in sorted((root / "results").iterdir())}
    return ReportInputs(runs=runs,
                        evals={r: json.loads((root / "metrics/eval" / f"{r}.json").read_text()) for r in runs},
                        per_user={r: pd.read_parquet(root / "results" / r / "ranks.parquet") for r in runs},
                        train={r: json.loads((root / "metrics/train" / f"{r}.json").read_text()) for r in runs},
                        splits={f.stem: json.loads(f.read_text()) for f in (root / "metrics/split").glob("*.json")})


def config(**changes) -> ReportConfig:
    import yaml

    from lib.config import from_dict
    return from_dict(ReportConfig, yaml.safe_load(PARAMS)["report"] | changes, "report")


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("study")
    build(root)
    md, apps, board = run_stage(root)
    return root, md, apps, board


@pytest.fixture
def fresh(study, tmp_path):
    """A private copy of the inputs (no outputs) for tests that change them."""
    root = tmp_path / "study"
    shutil.copytree(study[0], root, ignore=shutil.ignore_patterns("out"))
    return root


# --- markdown helpers --------------------------------------------------------------------------------------

def section(md: str, heading_start: str) -> str:
    """The text of the `## ` section whose heading starts with `heading_start`, up to the next `## `."""
    m = re.search(rf"^{re.escape(heading_start)}.*$", md, flags=re.M)
    rest = md[m.end():]
    nxt = re.search(r"^#{1,2} ", rest, flags=re.M)
    return rest[: nxt.start()] if nxt else rest


def tables(text: str) -> list[tuple[str, list[str], list[list[str]]]]:
    """Every markdown table: (the non-empty line above it, header cells, row cells)."""
    out, lines = [], text.splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("|") and i + 1 < len(lines) and lines[i + 1].startswith("|---"):
            j = i + 2
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            above = next((ln for ln in reversed(lines[:i]) if ln.strip()), "")
            cells = [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[i:j]]
            out.append((above, cells[0], cells[2:]))
            i = j
        else:
            i += 1
    return out


def column(head: list[str], rows: list[list[str]], name: str) -> dict[str, str]:
    """First-column key (backticks stripped) -> the cell of column `name`."""
    k = head.index(name)
    return {r[0].strip("`"): r[k] for r in rows}


def mean(cell: str) -> float:
    return float(cell.split(" ±")[0])


def version_of(run: str) -> int:
    return RUNS[run][5] or 1


def runs_in(cells: list[str]) -> set[str]:
    """The fixture's run names in a row's cells (as code spans)."""
    return {n for c in cells for n in re.findall(r"`([\w.]+)`", c) if n in RUNS}


def seeds_of(run: str) -> int:
    return len(RUNS[run][6])


# --- (a) the shape of RESULTS.md -----------------------------------------------------------------------------

def test_results_is_short_and_answers_each_question(study):
    _, md, _, _ = study
    assert len(md.splitlines()) <= 200
    heads = re.findall(r"^## (\d+)\. (.*)$", md, flags=re.M)
    assert [h[1] for h in heads] == ["Does content help?", "Semantic IDs as features?", "Generative retrieval?",
                                     "Which tokenizer?", "Cold-start targets?",
                                     "What does the protocol do, and how do our figures compare with published ones?"]
    for n, _ in heads:  # one table (at most 8 rows) and one computed answer per section
        body = section(md, f"## {n}.")
        found = tables(body)
        assert len(found) == 1 and len(found[0][2]) <= 8
        assert len(re.findall(r"^\*\*Answer:\*\*", body, flags=re.M)) == 1


def test_opening_states_the_5_core_survivorship_and_each_protocols_unreachable_share(study):
    _, md, _, _ = study
    head = md[: md.index("## 1.")]
    assert "5-core" in head and "survivorship" in head
    _, h, rows = tables(head)[0]
    unreachable, cold = column(h, rows, "unreachable test targets"), column(h, rows, "cold test targets")
    f = flags("gts", CURRENT)
    assert unreachable["gts"] == f"{f['unreachable'].sum()} ({f['unreachable'].mean():.1%})"
    assert cold["gts"] == str(f["knowable"].sum())
    assert unreachable["gts_refit"] == "–"  # a pre-#29 split file lacks the counts: shown as such
    assert f"Under `gts`, {f['unreachable'].sum()} of {N_TEST} test targets" in head


# --- (b) no table mixes protocols or protocol versions, no rule run in any table ----------------------------

def test_no_table_mixes_protocols_or_versions(study):
    _, md, apps, _ = study
    checked = 0
    for doc in [md, *apps.values()]:
        for above, head, rows in tables(doc):
            names = set().union(*(runs_in(r) for r in rows)) if rows else set()
            if not names:
                continue
            versions = {version_of(n) for n in names}
            assert len(versions) == 1, (above, names)
            if head[0] == "protocol":  # the protocol question: one row per protocol, each its own run
                for r in rows:
                    assert {RUNS[n][4] for n in runs_in(r)} == {r[0].strip("`")}
                continue
            assert len({RUNS[n][4] for n in names}) == 1, (above, names)
            checked += 1
    assert checked > 10


def test_model_tables_say_which_scope_they_hold(study):
    _, md, apps, _ = study
    for doc in [md, *apps.values()]:
        for above, head, rows in tables(doc):
            names = set().union(*(runs_in(r) for r in rows)) if rows else set()
            if names and head[0] in ("model", "model (test NDCG@10)"):
                run = next(iter(names))
                assert above.startswith(f"*Runs of protocol `{RUNS[run][4]}`, ")
                assert ("current protocol" in above) == (RUNS[run][5] == CURRENT)


def test_rule_runs_with_the_best_scores_are_in_no_table(study):
    root, md, apps, board = study
    ev = {r: json.loads((root / "metrics/eval" / f"{r}.json").read_text()) for r in RUNS}
    assert max(ev, key=lambda r: ev[r]["test/ndcg@10"]) in RULE_RUNS  # the rule run would lead every board
    assert max(ev, key=lambda r: ev[r]["val/ndcg@10"]) in RULE_RUNS
    for doc in [md, *apps.values()]:
        for _, _, rows in tables(doc):
            for r in rows:
                assert not runs_in(r) & RULE_RUNS, r
    for scope in board["scopes"].values():
        assert not set(scope["models"]) & RULE_RUNS
        assert not {t["model_name"] for t in scope["tests"]} & RULE_RUNS
    notes = section(apps["gts"], "## Analyses with list rules")
    assert "`sasrec_content_plus_id_shift`" in notes and "rules: cold_shift" in notes
    old = section(apps["gts_pre29"], "## Analyses with list rules")
    assert "`gpt2_sid_old`" in old and "tiger_cold_start" in old and "`sasrec_shift_old`" in old
    assert "`sasrec_content_plus_id_shift` (list rules" in section(md, "## 1.")


# --- (c) calibrated statistics ---------------------------------------------------------------------------------

def _marked_rows(doc: str):
    """(row, its mark, its reference) of every table with a mark column; the reference is the row marked
    "reference" in the table's Δ column or the one named after the Δ ("... vs `x`")."""
    for _, head, rows in tables(doc):
        if "mark" not in head:
            continue
        k = head.index("mark")
        delta = next(i for i, h in enumerate(head) if h.startswith("Δ"))
        ref = next((r[0].strip("`") for r in rows if r[delta] == "reference"), None)
        for r in rows:
            named = re.search(r" vs `(\w+)`$", r[delta])
            yield r, r[k], named.group(1) if named else ref


def test_claim_marks_only_with_equal_seeds_of_at_least_three(study):
    _, md, apps, _ = study
    seen = set()
    for doc in [md, *apps.values()]:
        for row, m, ref in _marked_rows(doc):
            seen.add(m.split(" ")[0])
            run = row[0].strip("`")
            if m[0] in "✓✗" or m.startswith("n.s."):
                assert seeds_of(run) == seeds_of(ref) >= 3, (run, ref, m)
            elif m != "–":
                assert m == (f"exploratory ({seeds_of(run)} vs {seeds_of(ref)} seeds)" if seeds_of(run) != seeds_of(ref)
                             else f"exploratory ({seeds_of(run)} seed{'s' * (seeds_of(run) > 1)} each)"), (run, m)
    assert {"✓", "exploratory"} <= seen
    rows = {r[0].strip("`"): m for r, m, _ in _marked_rows(section(md, "## 1."))}
    assert rows["sasrec_content_plus_id"] == "✓ (Holm)"  # 3 vs 3 seeds, a large effect, declared
    assert rows["sasrec_content"] == "exploratory (1 vs 3 seeds)"


@pytest.mark.parametrize("seeds, significant, diff, family, expected", [
    ((3, 3), True, 0.01, "confirmatory", "✓ (Holm)"),
    ((3, 3), True, -0.01, "exploratory", "✗ (BH, exploratory)"),
    ((3, 3), False, 0.01, "confirmatory", "n.s. (Holm)"),
    ((2, 2), True, 0.01, "confirmatory", "exploratory (2 seeds each)"),
    ((1, 3), True, 0.01, "confirmatory", "exploratory (1 vs 3 seeds)"),
    ((4, 3), True, 0.01, "exploratory", "exploratory (4 vs 3 seeds)"),
])
def test_mark_is_a_claim_only_with_equal_seeds(seeds, significant, diff, family, expected):
    from lib.report.stats import mark
    t = {"model_seeds": seeds[0], "reference_seeds": seeds[1], "significant": significant, "diff": diff,
         "family": family}
    assert mark(t, config()) == expected


def test_holm_over_the_declared_family_only_and_bh_over_the_rest(study):
    _, md, _, board = study
    tests = board["scopes"]["gts"]["tests"]
    conf = [t for t in tests if t["family"] == "confirmatory"]
    assert {(t["model_name"], t["against"]) for t in conf} == {
        ("sasrec_content_plus_id", "sasrec_id"), ("gpt2_id", "sasrec_id"), ("gpt2_sid", "sasrec_id"),
        ("sasrec_content", "sasrec_id")}
    assert all(t["key"] == "test/ndcg@10" and t["adjustment"] == "holm" for t in conf)
    # Holm for the declared size (5): the comparison not trained yet counts as p = 1
    assert [t["p_adjusted"] for t in conf] == pytest.approx(holm([t["p_value"] for t in conf] + [1.0])[:4])
    assert [t["p_adjusted"] for t in conf] != pytest.approx(holm([t["p_value"] for t in conf]))  # the fixture tells
    rest = [t for t in tests if t["family"] == "exploratory"]
    assert all(t["adjustment"] == "bh" for t in rest) and len(rest) > len(conf)
    assert [t["p_adjusted"] for t in rest] == pytest.approx(benjamini_hochberg([t["p_value"] for t in rest]))
    for name, scope in board["scopes"].items():  # other scopes (superseded ones included) claim nothing
        if name != "gts":
            assert all(t["family"] == "exploratory" for t in scope["tests"])
    claims = md[md.index("**Claims.**"):].split("\n")[0]
    assert "over its 5 comparisons (one not run yet counts as p = 1)" in claims
    assert "`not_trained_yet` vs `sasrec_id`" in claims


def test_p_values_are_never_zero_or_negative(study):
    _, md, apps, board = study
    for scope in board["scopes"].values():
        for t in scope["tests"]:
            assert 0.0 < t["p_value"] <= 1.0 and 0.0 < t["p_adjusted"] <= 1.0
    for doc in [md, *apps.values()]:
        for _, head, rows in tables(doc):
            for k, h in enumerate(head):
                if h.startswith("p") and ("adj" in h or h == "p"):
                    for r in rows:
                        assert r[k] == "–" or r[k] == "<0.0001" or float(r[k]) > 0, r[k]


def test_tests_use_seed_averaged_per_user_values(study):
    root, _, _, board = study
    t = next(t for t in board["scopes"]["gts"]["tests"]
             if (t["model_name"], t["against"], t["key"]) == ("sasrec_content_plus_id", "sasrec_id", "test/ndcg@10"))

    def avg(name: str) -> np.ndarray:
        runs = [name] + [f"{name}_s{s}" for s in RUNS[name][6][1:]]
        per = [per_user_metrics(loaded_ranks(pd.read_parquet(root / "results" / r / "ranks.parquet")
                                             .query("split == 'test'")["rank"].to_numpy()), [10])["ndcg@10"]
               for r in runs]
        return np.mean(per, axis=0)
    assert t["diff"] == pytest.approx(float((avg("sasrec_content_plus_id") - avg("sasrec_id")).mean()), abs=1e-6)
    assert t["test"] == "paired t" and t["users"] == N_TEST


# --- (d) answers computed from their tables ---------------------------------------------------------------

def _answer(md: str, n: int) -> str:
    return next(ln for ln in section(md, f"## {n}.").splitlines() if ln.startswith("**Answer:**"))


def test_answer_picks_on_validation_and_quotes_its_table(study):
    _, md, _, _ = study
    _, head, rows = tables(section(md, "## 1."))[0]
    answer = _answer(md, 1)
    # gpt2_content is best on validation, gpt2_content_plus_id on test: the answer names the former
    assert "`gpt2_content`, scores test NDCG@10" in answer and "`gpt2_content_plus_id`, scores" not in answer
    ndcg, diff = column(head, rows, "test NDCG@10"), column(head, rows, "Δ test NDCG@10 [95% CI]")
    said = re.search(r"`gpt2_content`, scores test NDCG@10 ([\d.]+) vs ([\d.]+) \(Δ ([^)]*)\)", answer)
    assert float(said.group(1)) == pytest.approx(mean(ndcg["gpt2_content"]), abs=1e-4)
    assert float(said.group(2)) == pytest.approx(mean(ndcg["gpt2_id"]), abs=1e-4)
    assert diff["gpt2_content"].startswith(said.group(3))
    assert "`sasrec_content_plus_id`, scores" in answer and "significantly better (Holm)" in answer
    val = column(head, rows, "val NDCG@10")
    order = [r[0].strip("`") for r in rows]
    assert order[:2] == ["sasrec_id", "gpt2_id"]  # references first, then best on validation first
    assert [float(val[m]) for m in order[2:]] == sorted((float(val[m]) for m in order[2:]), reverse=True)


def test_changing_a_committed_figure_changes_the_answer(fresh):
    cfg = config()
    before = render(inputs(fresh), cfg).markdown
    ev = fresh / "metrics/eval/gpt2_content_plus_id.json"
    data = json.loads(ev.read_text())
    data["val/ndcg@10"] = 0.99  # now the best on validation
    ev.write_text(json.dumps(data))
    for r in ("sasrec_content_plus_id", "sasrec_content_plus_id_s1", "sasrec_content_plus_id_s2"):
        shutil.copy(fresh / "results" / r.replace("sasrec_content_plus_id", "sasrec_id") / "ranks.parquet",
                    fresh / "results" / r / "ranks.parquet")  # its test ranks become SASRec-ID's: no effect left
    after = render(inputs(fresh), cfg).markdown
    assert _answer(before, 1) != _answer(after, 1)
    assert "`gpt2_content_plus_id`, scores test NDCG@10" in _answer(after, 1)
    assert "`sasrec_content_plus_id`, scores test NDCG@10 " in _answer(after, 1)
    assert "significantly better (Holm)" not in _answer(after, 1)


def test_a_question_without_current_runs_shows_the_superseded_scope_labelled(study):
    _, md, _, _ = study
    body = section(md, "## 2.")
    assert "**Not yet re-run under the current protocol: regeneration is issue 32.**" in body
    above, _, rows = tables(body)[0]
    assert "pre-#29 protocol (catalogue selected by the future; superseded, exploratory)" in above
    assert {r[0].strip("`") for r in rows} == {"sasrec_id_old", "sasrec_sid_unigram_old"}
    assert "against `sasrec_id_old`" in _answer(md, 2)
    assert "Not yet re-run under the current protocol (regeneration is issue 32): `not_trained_yet`" in \
        section(md, "## 1.")


def test_cold_section_measures_knowable_targets_against_the_control(study):
    root, md, _, _ = study
    _, head, rows = tables(section(md, "## 5."))[0]
    frame = pd.read_parquet(root / "results/sasrec_content/ranks.parquet").query("split == 'test'")
    knowable = frame["pool_knowable"].to_numpy(bool)
    hits = per_user_metrics(loaded_ranks(frame["rank"].to_numpy()), [10])["hr@10"].to_numpy()
    assert mean(column(head, rows, "cold HR@10")["sasrec_content"]) == pytest.approx(hits[knowable].mean(), abs=1e-4)
    control = float(column(head, rows, "random-slot control HR@10")["sasrec_content"])
    assert control == pytest.approx(frame["control_knowable/hr@10"].to_numpy()[knowable].mean(), abs=1e-4)
    assert not (knowable & frame["target_unreachable"].to_numpy()).any()
    answer = _answer(md, 5)
    assert f"on {knowable.sum()} knowable cold targets" in answer and answer.startswith(
        "**Answer:** the reference `sasrec_content` reaches cold-target HR@10")


def test_protocol_section_ratios_and_published_figures(study):
    _, md, _, _ = study
    _, head, rows = tables(section(md, "## 6."))[0]
    assert [r[0] for r in rows] == ["`gts`", "`gts_file_order`", "`gts_ties1`", "`loo`"]  # current version only
    nd = column(head, rows, "test NDCG@10")
    cell = column(head, rows, "× `gts` NDCG@10")["loo"]
    assert float(cell[1:]) == pytest.approx(mean(nd["loo"]) / mean(nd["gts"]), abs=0.01)  # cells are rounded
    ratio = float(cell[1:])
    assert "Paper SASRec" in column(head, rows, "published NDCG@10 / HR@10 (same protocol)")["gts_file_order"]
    assert column(head, rows, "published NDCG@10 / HR@10 (same protocol)")["loo"] == "–"  # no `like`: not beside
    answer = _answer(md, 6)
    assert f"`loo` ×{ratio:.2f}" in answer and "the NDCG@10 of Paper SASRec (Someone 2025)" in answer
    assert "`gts_pre29`" in section(md, "## 6.")  # the superseded version is pointed to, not mixed in


# --- (e) appendices and figures ------------------------------------------------------------------------------

def test_one_appendix_per_scope_with_its_full_leaderboard(study):
    root, md, apps, _ = study
    assert set(apps) == {"gts", "gts_file_order", "gts_ties1", "loo", "gts_pre29", "gts_refit_pre29", "loo_pre29"}
    _, head, rows = tables(section(apps["gts"], "## Leaderboard"))[0]
    plain = {n for n, s in RUNS.items() if s[4] == "gts" and s[5] == CURRENT} - RULE_RUNS
    assert {r[0].strip("`") for r in rows} == plain
    nd = column(head, rows, "test NDCG@10")
    runs = ["sasrec_id", "sasrec_id_s1", "sasrec_id_s2"]
    vals = [json.loads((root / "metrics/eval" / f"{r}.json").read_text())["test/ndcg@10"] for r in runs]
    assert nd["sasrec_id"] == f"{np.mean(vals):.4f} ± {np.std(vals, ddof=1):.4f}"
    for name in apps:
        assert f"(protocols/{name}.md)" in md
    assert "## Decoding (validation)" in apps["gts"] and "## Decoding" not in apps["loo"]


def test_figures_are_pngs_with_at_most_eight_series(study, fresh):
    root, md, apps, _ = study
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", md)
    assert linked
    for link in linked:
        assert (root / "out" / link).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    for text in apps.values():
        for link in re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text):
            assert (root / "out/protocols" / link).resolve().is_file()
    figures = render(inputs(fresh), config()).figures
    for name, (_, data) in figures.items():
        n = len(data) if isinstance(data, dict) else data["model"].nunique()
        assert 1 <= n <= 8, name


def test_stale_outputs_are_removed(fresh):
    run_stage(fresh, "again")
    (fresh / "again/protocols/old_scope.md").write_text("stale")
    (fresh / "again/figures/metrics_vs_k_gts.png").write_bytes(b"stale")
    run_stage(fresh, "again")
    assert not (fresh / "again/protocols/old_scope.md").exists()
    assert not (fresh / "again/figures/metrics_vs_k_gts.png").exists()


def test_rendering_is_deterministic(fresh):
    a, b = render(inputs(fresh), config()), render(inputs(fresh), config())
    assert a.markdown == b.markdown and a.appendices == b.appendices


# --- (f) errors and params -----------------------------------------------------------------------------------

def test_inputs_that_do_not_fit_are_errors(fresh):
    inp = inputs(fresh)
    del inp.per_user["gpt2_id"]
    with pytest.raises(ValueError, match="gpt2_id"):
        render(inp, config())
    inp = inputs(fresh)
    inp.per_user["gpt2_id_s1"] = inp.per_user["gpt2_id_s1"].assign(user=lambda f: f["user"] + 1)
    with pytest.raises(ValueError, match="gpt2_id_s1.*test users differ"):
        render(inp, config())


@pytest.mark.parametrize("change, key", [
    ({"confirmatory": [["a", "b", "c"]]}, "confirmatory"),
    ({"questions": {"x": {"title": "t", "models": ["a"], "references": ["b"]}}}, "questions.x"),
    ({"published": [{"model": "m", "source": "s"}]}, "published"),
    ({"min_claim_seeds": 1}, "min_claim_seeds"),
    ({"family": "report"}, "family"),
])
def test_bad_report_params_name_the_key(change, key):
    from lib.config import ConfigError
    with pytest.raises(ConfigError, match=re.escape(key)):
        config(**change)


def test_the_repositorys_report_params_load_and_name_existing_questions():
    import yaml

    from lib.config import from_dict
    cfg = from_dict(ReportConfig, yaml.safe_load((ROOT / "params.yaml").read_text())["report"], "report")
    assert len(cfg.questions) == 6 and cfg.confirmatory  # the protocol section is not one (lib/report/protocols.py)
    assert {q.target for q in cfg.questions.values()} == {"all", "cold"}


def test_report_stage_declares_every_module_it_imports():
    """dvc.yaml's report deps list the stage script and every repository module it imports, transitively."""
    import ast

    import yaml
    stage = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]["report"]
    todo, found = [ROOT / "stages/report.py"], set()
    while todo:
        path = todo.pop()
        rel = str(path.relative_to(ROOT))
        if rel in found:
            continue
        found.add(rel)
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            for name in names:
                base = (ROOT / "stages" if name == "_common" else ROOT) / name.replace(".", "/")
                for cand in (base.with_suffix(".py"), base / "__init__.py"):
                    if cand.is_file():
                        todo.append(cand)
    deps = set(stage["deps"])  # a package directory (lib/report) stands for its modules
    missing = sorted(f for f in found if f not in deps and not any(f.startswith(d + "/") for d in deps))
    assert not missing, missing
    assert {"reports/protocols", "reports/figures", "reports/RESULTS.md"} <= {next(iter(o)) for o in stage["outs"]}


def test_a_row_waits_for_a_declared_reference_of_its_kind():
    """A row is compared with the present reference of its family, else its backbone; one whose declared
    reference of that kind has not run in the scope gets no comparison rather than another model's."""
    from lib.report.models import Models
    from lib.report.scopes import row_reference
    runs = {"sasrec_id": ("rankers", "sasrec"), "gpt2_id": ("rankers", "gpt2"), "x_content": ("content_rankers",
                                                                                             "sasrec"),
            "g_content": ("content_rankers", "gpt2"), "rpg": ("parallel_generators", "gpt2")}
    models = Models(runs={n: {"family": f, "backbone": b} for n, (f, b) in runs.items()}, evals={})
    declared = ["sasrec_id", "gpt2_id"]
    assert row_reference("x_content", declared, declared, models) == "sasrec_id"  # same backbone
    assert row_reference("g_content", declared, declared, models) == "gpt2_id"
    assert row_reference("rpg", ["sasrec_id"], ["sasrec_id"], models) == "sasrec_id"  # nothing shared: the first
    assert row_reference("x_content", ["gpt2_id"], declared, models) is None  # sasrec_id exists, not in this scope
