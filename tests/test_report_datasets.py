"""lib/report/datasets.py and stage `compare`: whether another dataset agrees, per answer, from two leaderboards."""
from __future__ import annotations

import json
import re
import shutil

import pytest

from lib.report import render
from lib.report.datasets import AGREE, AGREE_NS, DISAGREE, OTHER_WAY, PARTLY, SAME_WAY, agreement, compare
from tests.test_report import PARAMS, STAGES, build, config, inputs, section


@pytest.fixture(scope="module")
def twin(tmp_path_factory):
    """A synthetic study and, as the 'other dataset', a copy where two models swap their per-user ranks."""
    root = tmp_path_factory.mktemp("beauty")
    build(root)
    other = tmp_path_factory.mktemp("yelp")
    shutil.copytree(root, other, dirs_exist_ok=True)
    for seed_suffix in ("", "_s1", "_s2"):  # sasrec_content_plus_id <-> sasrec_id, every seed
        a, b = other / "results" / f"sasrec_content_plus_id{seed_suffix}", other / "results" / f"sasrec_id{seed_suffix}"
        tmp = other / "swap.parquet"
        shutil.move(a / "ranks.parquet", tmp)
        shutil.move(b / "ranks.parquet", a / "ranks.parquet")
        shutil.move(tmp, b / "ranks.parquet")
    return root, other


@pytest.fixture(scope="module")
def boards(twin):
    """The leaderboards of the two synthetic datasets' reports, and of an identical copy of the first."""
    root, other = twin
    beauty = render(inputs(root), config(dataset="Beauty")).leaderboard
    return beauty, render(inputs(other), config(dataset="Yelp")).leaderboard, {**beauty, "dataset": "Twin"}


def test_identical_data_agrees_on_every_comparison(boards):
    """The other dataset's tests are its report's tests: on identical inputs each pair's two tests are equal and
    every verdict is 'agrees' (claimable) or 'same direction' (exploratory)."""
    beauty, _, twin = boards
    md, data = compare(beauty, twin, config(), "../twin/RESULTS.md")
    assert data["other"] == "Twin" and data["claims"]
    rows = data["claims"] + [r for q in data["questions"].values() for r in q]
    assert rows
    for r in rows:
        if r["Beauty"] is not None:
            assert r["Beauty"] == r["Twin"], r
            assert r["agreement"] in (AGREE, AGREE_NS, SAME_WAY), r
    assert SAME_WAY in {r["agreement"] for r in rows} and {AGREE, AGREE_NS} & {r["agreement"] for r in rows}
    assert "([its report](../twin/RESULTS.md))" in md
    heads = re.findall(r"^## \d+\. (.*)$", md, flags=re.M)
    assert heads == [q["title"] for q in beauty["questions"].values()]  # one section per answer, in its order
    assert len(re.findall(r"^\*\*Does Twin agree\?\*\*", md, flags=re.M)) == sum(
        q["scope"] is not None for q in beauty["questions"].values())


def test_a_reversed_effect_disagrees(boards):
    beauty, yelp, _ = boards
    md, data = compare(beauty, yelp, config())
    claims = {(r["model"], r["against"]): r for r in data["claims"]}
    flipped = claims[("sasrec_content_plus_id", "sasrec_id")]
    assert flipped["Beauty"]["diff"] > 0 > flipped["Yelp"]["diff"]
    assert flipped["Beauty"]["diff"] == pytest.approx(-flipped["Yelp"]["diff"])  # the same users, sides swapped
    assert flipped["agreement"] == DISAGREE  # significant both ways, opposite signs (3 seeds each)
    q1 = section(md, "## 1.")
    row = next(line for line in q1.splitlines() if line.startswith("| `sasrec_content_plus_id` | `sasrec_id`"))
    assert row.endswith(f"| {DISAGREE} |")
    assert ", 1 significant in opposite directions" in q1


def test_comparisons_without_a_test_on_either_side_are_named_not_hidden(boards):
    """The other dataset's test is looked up under this answer's scope and value; a comparison without it, a claim
    not tested on a side and a claim significant on one side only are each said so."""
    beauty, _, twin = boards
    cut = json.loads(json.dumps(twin))
    cut["scopes"]["gts"]["tests"] = [t for t in cut["scopes"]["gts"]["tests"]
                                     if not (t["model_name"] == "gpt2_content" and t["key"] == "test/ndcg@10")]
    claim = next(t for t in cut["scopes"]["gts"]["tests"] if (t["model_name"], t["against"], t["family"]) ==
                 ("sasrec_content_plus_id", "sasrec_id", "confirmatory"))
    assert next(t for t in beauty["scopes"]["gts"]["tests"] if t["model_name"] == "sasrec_content_plus_id"
                and t["against"] == "sasrec_id" and t["family"] == "confirmatory")["significant"]
    claim["significant"] = False
    md, data = compare(beauty, cut, config())
    q1 = section(md, "## 1.")
    assert "no test on Twin under `gts`: `gpt2_content`" in q1
    assert "gpt2_content" not in {r["model"] for r in data["questions"]["content"]}
    claims = {(r["model"], r["against"]): r for r in data["claims"]}
    assert claims[("sasrec_content_plus_id", "sasrec_id")]["agreement"] == f"{PARTLY}: significant on Beauty only"
    lead = md.split("**The claims.**", 1)[1].split("\n", 1)[0]
    assert "not tested on Beauty yet: `not_trained_yet`" in lead and "not tested on Twin yet: `not_trained_yet`" in lead
    assert "1 significant on one dataset only" in lead
    with pytest.raises(ValueError, match="report.dataset must differ"):
        compare(beauty, beauty, config())


@pytest.mark.parametrize("a, b, expected", [
    ((3, 3, True, 0.01), (3, 3, True, 0.02), AGREE),
    ((3, 3, False, 0.01), (3, 3, False, -0.02), AGREE_NS),  # neither significant: the same verdict
    ((3, 3, True, 0.01), (3, 3, True, -0.02), DISAGREE),
    ((3, 3, True, 0.01), (3, 3, False, 0.02), f"{PARTLY}: significant on A only"),
    ((3, 3, False, 0.01), (3, 3, True, -0.02), f"{PARTLY}: significant on B only"),
    ((1, 3, True, 0.01), (3, 3, True, 0.02), SAME_WAY),  # exploratory on one side: direction only
    ((3, 3, True, 0.01), (2, 2, True, -0.02), OTHER_WAY),
    ((2, 2, True, 0.0), (2, 2, True, -0.02), OTHER_WAY),  # no difference is not a negative one
])
def test_agreement_by_hand(a, b, expected):
    def t(seeds_m, seeds_r, sig, diff):
        return {"model_seeds": seeds_m, "reference_seeds": seeds_r, "significant": sig, "diff": diff}
    assert agreement(t(*a), t(*b), ("A", "B"), config()) == expected
    assert agreement(None, t(*b), ("A", "B"), config()) is None


def test_stage_end_to_end_and_its_errors(boards, tmp_path):
    import importlib
    import sys
    beauty, yelp, _ = boards
    (tmp_path / "b.json").write_text(json.dumps(beauty))
    (tmp_path / "y.json").write_text(json.dumps(yelp))
    (tmp_path / "params.yaml").write_text(PARAMS.replace("report:\n", "report:\n  dataset: Beauty\n", 1))

    def run(other: str) -> None:
        with pytest.MonkeyPatch.context() as mp:
            mp.syspath_prepend(str(STAGES))
            mp.setattr(sys, "argv", ["compare.py", "--leaderboard", str(tmp_path / "b.json"), "--other-leaderboard",
                                     str(tmp_path / other), "--other-report", str(tmp_path / "yelp/reports/RESULTS.md"),
                                     "--results", str(tmp_path / "out/yelp.md"), "--metrics",
                                     str(tmp_path / "out/yelp.json"), "--params", str(tmp_path / "params.yaml")])
            importlib.import_module("stages.compare").main()
    run("y.json")
    md = (tmp_path / "out/yelp.md").read_text()
    assert md.startswith("# Does Yelp agree with Beauty?") and "](../yelp/reports/RESULTS.md)" in md
    assert json.loads((tmp_path / "out/yelp.json").read_text())["other"] == "Yelp"
    (tmp_path / "old.json").write_text(json.dumps({k: v for k, v in yelp.items() if k != "headline_scope"}))
    with pytest.raises(SystemExit, match="predates the dataset comparison"):
        run("old.json")
    with pytest.raises(SystemExit, match="leaderboard not found"):
        run("missing.json")


def test_revisits_section_only_where_the_evaluation_scored_them(twin):
    """Yelp's evaluations hold `test/unfiltered/*`: a section sets them beside the filtered figures, the model with
    the most re-visit hits named; a dataset without them (Beauty) has no such section, and the split table counts
    re-visit targets either way."""
    root, _ = twin
    inp = inputs(root)
    assert "## Re-visits" not in render(inp, config()).markdown
    revisit = {"sasrec_id": 0.40, "gpt2_id": 0.10, "sasrec_content_plus_id": 0.25}
    for run, ev in inp.evals.items():
        base = run.removesuffix("_s1").removesuffix("_s2")
        if base in revisit:
            ev |= {"test/unfiltered/ndcg@10": ev["test/ndcg@10"] + 0.01, "test/unfiltered/repeat_target/users": 17,
                   "test/unfiltered/repeat_target/hr@10": revisit[base],
                   "test/unfiltered/new_target/ndcg@10": ev["test/ndcg@10"]}
    inp.splits["gts"] |= {"test_repeat_targets": 17}
    md = render(inp, config()).markdown
    body = section(md, "## Re-visits")
    rows = [line for line in body.splitlines() if line.startswith("| `")]
    assert {r.split(" | ")[0].strip("| `") for r in rows} == set(revisit)
    assert "the 17 test targets" in body and "`sasrec_id` hits the most re-visit targets" in body
    assert "0.4000" in next(r for r in rows if r.startswith("| `sasrec_id`"))
    assert re.search(r"\| `gts` \|.*\| 17 \(7\.1%\) \|", md)  # 17 of the 240 test users
