"""End to end: `dvc repro split@gts` on synthetic raw files in a scratch copy of the repository.

Also checks the graph DVC sees against the code: every `lib` module a stage script imports
(transitively) is listed in that stage's `deps`, and every input path its command passes is a dep.
"""
from __future__ import annotations

import ast
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.conftest import amazon_raw, write_gz

ROOT = Path(__file__).resolve().parent.parent
N_USERS, N_ITEMS = 60, 30
DATA_STAGES = ("parse", "preprocess", "split@gts")


def _env() -> dict:
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["DVC_NO_ANALYTICS"] = "1"
    env.pop("PYTHONPATH", None)  # the stages must find `lib` on their own
    return env


def _run(args: list[str], cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    p = subprocess.run(args, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=300)
    if check and p.returncode != 0:
        pytest.fail(f"{' '.join(args)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
    return p


def _repro(repo: Path) -> str:
    p = _run(["dvc", "repro", "split@gts"], repo)
    return p.stdout + p.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> tuple[Path, str]:
    """A scratch DVC repo holding the pipeline and synthetic raw files, after one `dvc repro split`."""
    repo = tmp_path_factory.mktemp("e2e")
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for d in ("stages", "lib"):
        shutil.copytree(ROOT / d, repo / d, ignore=ignore)
    for f in ("dvc.yaml", "params.yaml", ".dvcignore"):
        shutil.copy(ROOT / f, repo / f)
    _run(["git", "init", "-q"], repo)
    _run(["dvc", "init", "-q"], repo)
    shutil.copy(ROOT / ".dvc" / "config", repo / ".dvc" / "config")
    reviews, meta = amazon_raw(seed=0, n_users=N_USERS, n_items=N_ITEMS)
    write_gz(repo / "data/raw/reviews_Beauty_5.json.gz", reviews + ["not a review"])
    write_gz(repo / "data/raw/meta_Beauty.json.gz", meta + ["{'title': 'no asin'}"])
    return repo, _repro(repo)


def _json(path: Path) -> dict:
    return json.loads(path.read_text())


def test_first_repro_runs_the_data_stages_and_writes_consistent_outputs(repo):
    repo, log = repo
    for stage in DATA_STAGES:
        assert f"Running stage '{stage}'" in log
    assert "train_" not in log  # only what `split` needs
    parse, prep, spl = (_json(repo / f"metrics/{s}.json") for s in ("parse", "preprocess", "split/gts"))
    n_reviews = len(amazon_raw(seed=0, n_users=N_USERS, n_items=N_ITEMS)[0])
    assert parse["reviews"] == {"lines": n_reviews + 1, "malformed": 1, "rows": n_reviews,
                                "has_rating": False}
    assert parse["meta"]["rows"] == N_ITEMS and parse["meta"]["malformed"] == 1

    parsed = pd.read_parquet(repo / "data/parsed/interactions.parquet")
    inter = pd.read_parquet(repo / "data/processed/interactions.parquet")
    items = pd.read_parquet(repo / "data/processed/items.parquet")
    users = pd.read_parquet(repo / "data/processed/users.parquet")
    assert len(parsed) == n_reviews == prep["rows_in"]
    # distinct items per user, >= 6 per user and ~18 per item: everything survives the 5-core
    assert prep["interactions"] == len(inter) == n_reviews
    assert prep["users"] == len(users) == N_USERS and prep["items"] == len(items) == N_ITEMS
    assert items["item"].tolist() == list(range(1, N_ITEMS + 1))
    assert prep["items_without_metadata"] == 0
    assert items.loc[0, "title"] == f"Item {int(items.loc[0, 'item_id'][1:])} & co"

    parts = {n: pd.read_parquet(repo / f"data/split/gts/{n}.parquet")
             for n in ("train", "train_full", "val", "test")}
    desc = _json(repo / "data/split/gts/split.json")  # the split's own description; metrics add diagnostics
    assert spl == {**desc, **{k: spl[k] for k in spl.keys() - desc.keys()}} and spl["protocol"] == "gts"
    assert {"tie_break", "test_same_day_target_fraction", "test_repeat_targets"} <= spl.keys() - desc.keys()
    q = yaml.safe_load((repo / "params.yaml").read_text())["split"]["quantile"]
    assert spl["t_test"] == int(np.quantile(inter["timestamp"], q))
    assert spl["train_interactions"] == len(parts["train"])
    assert spl["val_users"] == len(parts["val"]) > 0
    assert spl["test_users"] == len(parts["test"]) > 0
    assert (parts["train"]["timestamp"] <= spl["t_val"]).all()
    assert (parts["test"]["target_timestamp"] > spl["t_test"]).all()
    assert parts["test"]["history"].map(len).tolist() == parts["test"]["history_length"].tolist()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert set(DATA_STAGES) <= set(lock["stages"])


def test_repro_is_a_noop_until_a_param_changes(repo):
    repo, _ = repo
    assert "Running stage" not in _repro(repo)
    before = _json(repo / "metrics/split/gts.json")
    params = repo / "params.yaml"
    text = params.read_text()
    new = re.sub(r"(\n  quantile:) 0\.9\b", r"\1 0.7", text)
    assert new != text
    params.write_text(new)
    log = _repro(repo)
    assert "Running stage 'split@gts'" in log
    assert "Running stage 'parse'" not in log and "Running stage 'preprocess'" not in log
    after = _json(repo / "metrics/split/gts.json")
    assert after["t_test"] < before["t_test"]
    assert after["test_users"] > before["test_users"]


def test_parse_stage_reports_a_truncated_raw_file(repo, tmp_path):
    repo, _ = repo
    raw = tmp_path / "raw"
    raw.mkdir()
    shutil.copy(repo / "data/raw/reviews_Beauty_5.json.gz", raw)  # present and valid: nothing to download
    good = gzip.compress(b"".join(f"{{'asin': 'B{i}'}}\n".encode() for i in range(2000)))
    (raw / "meta_Beauty.json.gz").write_bytes(good[: len(good) // 2])
    p = _run([sys.executable, "stages/parse.py", "--raw-dir", str(raw),
              "--interactions", str(tmp_path / "i.pq"), "--items", str(tmp_path / "m.pq"),
              "--metrics", str(tmp_path / "m.json")], repo, check=False)
    assert p.returncode != 0
    assert "truncated" in p.stderr and str(raw / "meta_Beauty.json.gz") in p.stderr
    assert "Traceback" not in p.stderr
    assert not (tmp_path / "i.pq").exists()


# --- the graph DVC sees vs. the imports of the stage scripts ---------------------------------------

def _module_file(name: str, importer: str = "") -> str | None:
    """'lib.data.raw' -> 'lib/data/raw.py' (or the package's __init__.py); '_common' -> stages/_common.py
    (a stage helper module, imported as a sibling by the stage scripts: `_common`, `_codes`)."""
    if (name.startswith("_") or importer.startswith("stages/")) and (ROOT / "stages" / f"{name}.py").is_file():
        return f"stages/{name}.py"
    if name != "lib" and not name.startswith("lib."):
        return None
    base = name.replace(".", "/")
    return f"{base}/__init__.py" if (ROOT / base).is_dir() else f"{base}.py"


def _imports(path: str) -> set[str]:
    """Repository files `path` imports directly."""
    tree = ast.parse((ROOT / path).read_text())
    package = str(Path(path).parent).replace("/", ".")
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            if node.level:
                parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(parts + ([mod] if mod else []))
            # `from lib.data import raw` imports the module lib/data/raw.py
            names = [mod] + [f"{mod}.{a.name}" for a in node.names
                             if (ROOT / mod.replace(".", "/") / f"{a.name}.py").is_file()]
        else:
            continue
        found |= {f for f in (_module_file(n, path) for n in names) if f}
    return found


def _closure(script: str) -> set[str]:
    seen, todo = set(), [script]
    while todo:
        f = todo.pop()
        if f in seen or not (ROOT / f).is_file():
            seen.add(f)
            continue
        seen.add(f)
        todo += sorted(_imports(f))
    return seen


def _stages() -> dict:
    """Stage name -> definition; a foreach stage's body (`do`) stands for its entries."""
    return {k: v.get("do", v) for k, v in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items()}


@pytest.mark.parametrize("name", sorted(_stages()))
def test_stage_deps_list_every_imported_module(name):
    stage = _stages()[name]
    script = re.search(r"python (stages/\S+\.py)", stage["cmd"])
    assert script, f"{name}: cmd does not run a stages/ script"
    needed = {f for f in _closure(script.group(1)) if not f.endswith("__init__.py")}
    deps = set(stage["deps"])  # a package directory (lib/models) stands for every module in it
    missing = sorted(f for f in needed if f not in deps and not any(f.startswith(d + "/") for d in deps))
    assert not missing, f"stage {name!r} imports {missing} but does not list them in deps"


@pytest.mark.parametrize("name", ("parse", "preprocess"))
def test_data_stages_read_only_their_own_params_section(name):
    assert _stages()[name]["params"] == [name]
    assert f'load_section(args.params, "{name}"' in (ROOT / f"stages/{name}.py").read_text()


def _paths(entries) -> set[str]:
    return {next(iter(e)) if isinstance(e, dict) else e for e in entries or []}


@pytest.mark.parametrize("name", sorted(_stages()))
def test_every_input_path_of_the_command_is_a_declared_dep(name):
    """A path the cmd passes (data/, results/, metrics/, plots/) is an output, a dep, or a directory
    whose declared deps are files in it; and every data dep is something the cmd passes (or lies in it)."""
    stage = _stages()[name]
    outs = _paths(stage.get("outs")) | _paths(stage.get("metrics")) | _paths(stage.get("plots"))
    deps = set(stage["deps"])
    passed = set(re.findall(r"(?<=\s)((?:data|results|metrics|plots|codes)(?:/\S+)?)(?=\s|$)", stage["cmd"]))
    for path in (p for p in passed - outs if not any(o.startswith(p + "/") for o in outs)):
        assert path in deps or any(d.startswith(path.rstrip("/") + "/") for d in deps), \
            f"stage {name!r} passes {path} but does not declare it (or files in it) in deps"
    for dep in (d for d in deps if d.split("/")[0] in ("data", "results", "metrics", "plots", "codes")):
        assert any(dep == p or dep.startswith(p.rstrip("/") + "/") for p in passed), \
            f"stage {name!r} declares {dep} but its cmd never passes it"
