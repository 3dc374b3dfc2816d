"""One pipeline per dataset: yelp/ runs the root's dvc.yaml, stages and lib on its own params.yaml.

A name means the same thing in both params files: a shared section holds the same values, and a table entry
(protocol, item vectors, tokenizer, run) of the same name is the same entry, so `sasrec_id` is one model trained
on two datasets. Only DATASET_KEYS (what is about the data) and the per-dataset tables may differ.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PIPELINES = {"yelp": ROOT / "yelp"}
# section -> keys a dataset sets for its own data (everything else of a shared section is equal)
DATASET_KEYS = {"parse": {"category", "categories", "source_dir"},
                "preprocess": {"remove_consecutive_repeats"},  # Yelp: re-visits are the data
                "evaluate": {"unfiltered"}}  # Yelp: re-visits scored too
TABLES = {"protocols", "vectors", "tokenizers", "runs", "study", "report", "compare"}  # per dataset
REPORT_DATASET_KEYS = {"dataset", "questions", "published"}  # the rest (claims, tests): the same


def _params(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


ROOT_PARAMS = _params(ROOT / "params.yaml")


@pytest.fixture(params=sorted(PIPELINES), ids=sorted(PIPELINES))
def pipeline(request) -> tuple[Path, dict]:
    d = PIPELINES[request.param]
    return d, _params(d / "params.yaml")


def test_the_pipeline_is_the_roots_code(pipeline):
    d, _ = pipeline
    for name in ("dvc.yaml", "stages", "lib"):
        assert (d / name).is_symlink(), f"{d.name}/{name} must link to the root's (one code, several datasets)"
        assert (d / name).resolve() == (ROOT / name).resolve()


def test_shared_sections_hold_the_roots_values(pipeline):
    d, params = pipeline
    assert set(params) == set(ROOT_PARAMS), f"{d.name}/params.yaml sections differ from the root's"
    for section in sorted(set(params) - TABLES):
        mine, root = params[section], ROOT_PARAMS[section]
        keys = DATASET_KEYS.get(section, set())
        assert set(mine) == set(root), f"{d.name}: section {section!r} has other keys than the root's"
        differ = sorted(k for k in mine if k not in keys and mine[k] != root[k])
        assert not differ, f"{d.name}: {section}.{differ} differ from ../params.yaml (dataset keys: {sorted(keys)})"
    report = {k: v for k, v in params["report"].items() if k not in REPORT_DATASET_KEYS}
    assert report == {k: v for k, v in ROOT_PARAMS["report"].items() if k not in REPORT_DATASET_KEYS}


def test_table_entries_are_the_roots_entries_of_the_same_name(pipeline):
    d, params = pipeline
    tables = {"protocols": lambda p: p["protocols"], "tokenizers": lambda p: p["tokenizers"],
              "vectors.embed": lambda p: p["vectors"]["embed"], "vectors.collab": lambda p: p["vectors"]["collab"],
              **{f"runs.{f}": (lambda p, f=f: p["runs"][f]) for f in ROOT_PARAMS["runs"]}}
    for table, get in tables.items():
        mine, root = get(params) or {}, get(ROOT_PARAMS) or {}
        for name, entry in mine.items():
            assert name in root, f"{d.name}: {table}.{name} is not in ../params.yaml (a name must mean one thing)"
            assert entry == root[name], f"{d.name}: {table}.{name} differs from the root's entry"


def test_every_name_the_pipeline_uses_is_its_own(pipeline):
    """Sets, report models and what runs read (protocol, vectors, tokenizer) exist in the pipeline's own tables."""
    d, params = pipeline
    runs = {r: e for fam in params["runs"].values() for r, e in (fam or {}).items()}
    for name, members in params["study"].items():
        assert set(members) <= set(runs), f"{d.name}: study.{name} names runs it does not declare"
    for q in params["report"]["questions"].values():
        assert set(q["models"]) | set(q["references"]) <= set(runs)
    assert {m for pair in params["report"]["confirmatory"] for m in pair} <= set(runs)
    vectors = set(params["vectors"]["embed"]) | set(params["vectors"]["collab"] or {})
    for r, e in runs.items():
        assert e["protocol"] in params["protocols"], (r, e)
        assert e.get("tokenizer", next(iter(params["tokenizers"]))) in params["tokenizers"], (r, e)
        assert e.get("vectors", "minilm") in vectors, (r, e)
    for t, e in params["tokenizers"].items():
        assert e["protocol"] in params["protocols"] and e["vectors"] in vectors, (t, e)


@pytest.mark.parametrize("path", ["yelp/data/raw/reviews_Yelp_5.json.gz", "yelp/data/raw/meta_Yelp.json.gz",
                                  "yelp/data/parsed/items.parquet", "yelp/data/split/gts/train.parquet",
                                  "yelp/codes/rqvae/codes.npy"])
def test_yelp_data_never_reaches_git(path):
    """Yelp's licence forbids redistribution: all of yelp/data/ (raw files, parsed tables, splits, vectors, models:
    ignored before DVC writes its own .gitignore files, so a killed stage cannot leave one unignored) and the
    tokenizers' codes (derived from its text) are ignored."""
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout")
    rule = subprocess.run(["git", "check-ignore", "--no-index", "-q", path], cwd=ROOT, capture_output=True)
    assert rule.returncode == 0, f"{path} is not ignored by git"


def test_report_params_load_and_the_comparison_names_a_pipeline(pipeline):
    """Each pipeline's `report` params are a valid ReportConfig with its own dataset name; a `compare` entry names
    another pipeline's directory (its leaderboard is the compare stage's input)."""
    from lib.config import from_dict
    from lib.report import ReportConfig
    d, params = pipeline
    names = {}
    for where, prm in ((ROOT, ROOT_PARAMS), (d, params)):
        names[where] = from_dict(ReportConfig, prm["report"], "report").dataset
        for key, entry in (prm.get("compare") or {}).items():
            other = (where / entry["dir"]).resolve()
            assert other != where.resolve() and (other / "params.yaml").is_file() and (other / "dvc.yaml").exists(), \
                (where, key, entry)
    assert names[ROOT] != names[d], "two pipelines, one dataset name: the comparison could not tell them apart"
