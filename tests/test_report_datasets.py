"""lib/report/datasets.py and the report stage's --compare-*: whether the other dataset agrees, per answer."""
from __future__ import annotations

import importlib
import json
import re
import shutil
import sys

import pytest

from lib.report import render
from lib.report.datasets import AGREE, DISAGREE, OTHER_WAY, PARTLY, SAME_WAY, agreement
from tests.test_report import STAGES, _argv, build, config, inputs, section


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


def _claims(board: dict) -> dict[tuple[str, str], dict]:
    return {(r["model"], r["against"]): r for r in board["compare"]["claims"]}


def test_identical_data_agrees_on_every_comparison(twin):
    """The other dataset's tests are the same tests: on identical inputs each pair's two tests are equal and every
    verdict is 'agrees' (claimable) or 'same direction' (exploratory)."""
    root, _ = twin
    inp = inputs(root)
    rep = render(inp, config(), other=(inp, config(dataset="Twin"), "../twin/RESULTS.md"))
    comp = rep.leaderboard["compare"]
    assert comp["dataset"] == "Twin" and comp["claims"]
    rows = comp["claims"] + [r for q in comp["questions"].values() for r in q]
    for r in rows:
        if r["Beauty"] is not None:
            assert r["Beauty"] == r["Twin"], r
            assert r["agreement"] in (AGREE, SAME_WAY), r
    assert any(r["agreement"] == AGREE for r in rows) and any(r["agreement"] == SAME_WAY for r in rows)
    body = section(rep.markdown, "## 1.")
    assert "**Does Twin agree?** ([its report](../twin/RESULTS.md))" in body
    assert "The claims on Twin" in rep.markdown


def test_a_reversed_effect_disagrees_and_the_rest_still_agrees(twin):
    root, other = twin
    rep = render(inputs(root), config(), other=(inputs(other), config(dataset="Yelp"), None))
    claims = _claims(rep.leaderboard)
    flipped = claims[("sasrec_content_plus_id", "sasrec_id")]
    assert flipped["Beauty"]["diff"] > 0 > flipped["Yelp"]["diff"]
    assert flipped["Beauty"]["diff"] == pytest.approx(-flipped["Yelp"]["diff"])  # the same users, sides swapped
    assert flipped["agreement"] == DISAGREE  # significant both ways, opposite signs (3 seeds each)
    same = claims[("gpt2_id", "sasrec_id")]  # gpt2_id vs a reference that now holds the fusion model's ranks
    assert same["Beauty"]["diff"] != same["Yelp"]["diff"]
    q1 = section(rep.markdown, "## 1.")
    row = next(line for line in q1.splitlines() if line.startswith("| `sasrec_content_plus_id` | `sasrec_id`"))
    assert row.endswith(f"| {DISAGREE} |")


def test_no_run_on_the_other_dataset_is_said_not_hidden(twin):
    root, _ = twin
    from lib.report import ReportInputs
    rep = render(inputs(root), config(), other=(ReportInputs({}, {}, {}), config(dataset="Yelp"), None))
    assert "**Yelp:** no run there yet" in rep.markdown and "compare" not in rep.leaderboard
    assert "Does Yelp agree" not in rep.markdown


@pytest.mark.parametrize("a, b, expected", [
    ((3, 3, True, 0.01), (3, 3, True, 0.02), AGREE),
    ((3, 3, False, 0.01), (3, 3, False, -0.02), AGREE),  # neither significant: the same verdict
    ((3, 3, True, 0.01), (3, 3, True, -0.02), DISAGREE),
    ((3, 3, True, 0.01), (3, 3, False, 0.02), f"{PARTLY}: significant on A only"),
    ((3, 3, False, 0.01), (3, 3, True, -0.02), f"{PARTLY}: significant on B only"),
    ((1, 3, True, 0.01), (3, 3, True, 0.02), SAME_WAY),  # exploratory on one side: direction only
    ((3, 3, True, 0.01), (2, 2, True, -0.02), OTHER_WAY),
])
def test_agreement_by_hand(a, b, expected):
    def t(seeds_m, seeds_r, sig, diff):
        return {"model_seeds": seeds_m, "reference_seeds": seeds_r, "significant": sig, "diff": diff}
    assert agreement(t(*a), t(*b), ("A", "B"), config()) == expected
    assert agreement(None, t(*b), ("A", "B"), config()) is None


def test_stage_reads_the_other_pipeline_and_its_own_report_params(twin, tmp_path):
    root, other = twin
    (other / "params.yaml").write_text((other / "params.yaml").read_text().replace(
        "report:\n", "report:\n  dataset: Yelp\n  compare: ..\n", 1))
    argv = _argv(root, "out") + ["--compare-params", str(other / "params.yaml"),
                                 "--compare-results-dir", str(other / "results"),
                                 "--compare-eval-metrics", str(other / "metrics/eval"),
                                 "--compare-train-metrics", str(other / "metrics/train"),
                                 "--compare-report", str(other / "reports/RESULTS.md")]
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(STAGES))
        mp.setattr(sys, "argv", argv)
        importlib.import_module("stages.report").main()
    md = (root / "out/RESULTS.md").read_text()
    board = json.loads((root / "out/leaderboard.json").read_text())
    assert board["dataset"] == "Beauty" and board["compare"]["dataset"] == "Yelp"
    link = re.search(r"\(\[its report\]\(([^)]+)\)\)", md).group(1)
    assert (root / "out" / link).resolve() == (other / "reports/RESULTS.md").resolve()
    with pytest.MonkeyPatch.context() as mp:  # half of the --compare-* flags: refused, naming them
        mp.syspath_prepend(str(STAGES))
        mp.setattr(sys, "argv", _argv(root, "out2") + ["--compare-params", str(other / "params.yaml")])
        with pytest.raises(SystemExit, match="go together"):
            importlib.import_module("stages.report").main()


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
