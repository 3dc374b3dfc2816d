"""reports/RESULTS.md: computed statements match the numbers they come from; the stage writes it end to end."""
from __future__ import annotations

import json

import numpy as np
import pytest

from lib.evaluate import EvaluateConfig
from lib.plots import codebook_usage_figure
from lib.report import ReportInputs, render, representation_grid, summary, tokenizer_of
from tests.test_evaluate import _argv, stage, workspace  # noqa: F401  (fixtures)

CFG = EvaluateConfig(ks=(5, 10), significance_metrics=("ndcg@10", "hr@10"))


def _flat(ndcg: float, hr: float, cold_hr: float) -> dict:
    return {"test/users": 100, "test/ndcg@10": ndcg, "test/hr@10": hr, "test/ndcg@5": ndcg / 2,
            "test/hr@5": hr / 2, "test/mrr@5": ndcg / 3, "test/mrr@10": ndcg / 3,
            "test/cold_target/users": 20, "test/cold_target/hr@10": cold_hr, "test/cold_target/ndcg@10": cold_hr / 2,
            "test/warm_target/hr@10": hr, "test/warm_target/ndcg@10": ndcg}


def _test(diff: float, significant: bool) -> dict:
    return {"users": 100, "baseline": 0.0, "model": diff, "diff": diff, "ci_low": diff - 0.01,
            "ci_high": diff + 0.01, "p_value": 0.01 if significant else 0.5, "significant": significant}


@pytest.fixture
def inputs() -> ReportInputs:
    models = {"sasrec_id": _flat(0.020, 0.040, 0.0), "sasrec_content": _flat(0.019, 0.038, 0.015),
              "sasrec_content_plus_id": _flat(0.025, 0.044, 0.0), "gpt2_id": _flat(0.018, 0.034, 0.0),
              "gpt2_sid": _flat(0.012, 0.027, 0.025), "gpt2_sid_random": _flat(0.008, 0.015, 0.0)}
    comparisons = {"sasrec_content_plus_id": {"test/ndcg@10": _test(0.005, True)},
                   "gpt2_sid": {"test/cold_target/hr@10": _test(0.025, True)}}
    rng = np.random.default_rng(0)
    codes = np.concatenate([np.full((1, 3), -1), rng.integers(0, 4, size=(30, 3))])
    return ReportInputs(
        leaderboard={"baseline": "sasrec_id", "models": models, "comparisons": comparisons},
        train={"gpt2_sid": {"n_levels": 3, "test/prefix_hr@10/codes1": 0.19, "test/prefix_hr@10/codes2": 0.04,
                            "test/prefix_hr@10/codes3": 0.03, "best_epoch": 20, "train_seconds": 869.2},
               "sasrec_id": {"best_epoch": 17, "seconds_per_epoch": 11.56, "peak_memory_mb": 833.9}},
        tokenizers={"rqvae": {"method": "rqvae", "level_0": {"codes_used": 4, "perplexity": 3.9},
                              "level_1": {"codes_used": 3, "perplexity": 2.5}, "collision_rate": 0.05}},
        codes={"rqvae": codes, "random": codes})


def test_tokenizer_of_maps_generators_to_their_tokenizer():
    assert tokenizer_of("gpt2_sid") == "rqvae" and tokenizer_of("gpt2_sid_lsh") == "lsh"
    assert tokenizer_of("gpt2_sid_rqvae_diversity") == "rqvae_diversity"
    assert tokenizer_of("gpt2_id") is None and tokenizer_of("sasrec_content") is None
    # GPT-2 with Semantic-ID representations shares the prefix but is no generator
    assert tokenizer_of("gpt2_sid_unigram") is None and tokenizer_of("gpt2_sid_plus_id") is None
    assert tokenizer_of("sasrec_sid_bigram") is None


def test_summary_names_the_best_models_with_their_tests(inputs):
    lines = summary(inputs, CFG)
    assert lines[0].startswith("- **Best overall (test NDCG@10): `sasrec_content_plus_id`** 0.0250")
    assert "+25%" in lines[0] and "significant: diff +0.0050" in lines[0]
    assert "`gpt2_sid`** 0.0250 vs `sasrec_id` 0.0000 (significant" in lines[1]
    assert any(line.startswith("- sasrec: best item representation `content_plus_id`") for line in lines)
    assert any("best tokenizer `rqvae`" in line and "`random` 0.0080" in line for line in lines)
    # a model without a paired test is said to be untested, never silently significant
    inputs.leaderboard["comparisons"] = {}
    assert "not tested" in summary(inputs, CFG)[0]


def test_representation_grid_orders_id_first_and_leaves_gaps():
    rows = representation_grid({"sasrec_content": {"test/ndcg@10": 0.02}, "sasrec_id": {"test/ndcg@10": 0.01},
                                "gpt2_id": {"test/ndcg@10": 0.03}, "gpt2_sid": {"test/ndcg@10": 0.04},
                                "sasrec_sid_unigram": {"test/ndcg@10": 0.05, "test/cold_target/hr@10": 0.2}})
    assert rows[0] == "| representation | sasrec NDCG@10 | sasrec cold HR@10 | gpt2 NDCG@10 | gpt2 cold HR@10 |"
    assert rows[2:] == ["| id | 0.0100 | – | 0.0300 | – |", "| content | 0.0200 | – | – | – |",
                        "| sid_unigram | 0.0500 | 0.2000 | – | – |"]  # gpt2_sid is a generator, not a representation


def test_render_has_every_section_and_the_per_level_hit_rates(inputs):
    text = render(inputs, CFG, {"metrics_vs_k": "../plots/eval/metrics_vs_k.png"})
    for title in ("## What works best", "## Leaderboard", "## Cold vs warm", "## Semantic-ID generator",
                  "## Tokenizers", "## Training cost"):
        assert title in text
    assert "| gpt2_sid | rqvae | 0.1900 | 0.0400 | 0.0300 |" in text
    assert "| rqvae | rqvae | 4 / 4 | 3 / 2 |" in text
    assert "![metrics_vs_k](../plots/eval/metrics_vs_k.png)" in text and "\n\n\n" not in text


def test_codebook_usage_figure_has_a_panel_per_tokenizer(inputs):
    fig = codebook_usage_figure(inputs.codes)
    assert len(fig.axes) == 2 and len(fig.axes[0].lines) == 2  # two semantic levels; the last column is dropped


def test_stage_writes_results_with_tokenizers_and_training_facts(stage, workspace):  # noqa: F811
    (workspace / "train").mkdir()
    (workspace / "train" / "gpt2_id.json").write_text(json.dumps({"best_epoch": 3, "train_seconds": 12.5}))
    tok = workspace / "tokenizers" / "lsh"
    tok.mkdir(parents=True)
    np.save(tok / "codes.npy", np.array([[-1, -1, -1], [0, 1, 0], [1, 1, 0], [1, 0, 0]]))
    (tok / "meta.json").write_text(json.dumps({"method": "lsh"}))
    (workspace / "lsh.json").write_text(json.dumps({"collision_rate": 0.25, "level_0": {"codes_used": 2,
                                                                                         "perplexity": 1.9}}))
    results = workspace / "reports" / "RESULTS.md"
    stage.main(_argv(workspace) + ["--results", str(results), "--train-metrics", str(workspace / "train"),
                                   "--tokenizer-metrics", str(workspace / "lsh.json"),
                                   "--codes", str(workspace / "tokenizers")])
    text = results.read_text()
    assert "| lsh | lsh | 2 / 2 | 0.2500 |" in text and "| gpt2_id | 3 | – | – | 12.5 |" in text
    assert "![codebook_usage](../plots/codebook_usage.png)" in text
    assert (workspace / "plots" / "codebook_usage.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(SystemExit, match="report input not found"):
        stage.main(_argv(workspace) + ["--results", str(results), "--codes", str(workspace / "nope")])
