"""lib/vectors.py and the stages around data/vectors/<name>: text_vectors (the embed stage under overrides),
vector_tokenizer on text vectors, train_vector_rankers + evaluate on a tiny synthetic split; the repository's
tables load."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lib.config import ConfigError
from lib.embed import WORDLLAMA, EmbedConfig, embed_items
from lib.models.config import SeqRecConfig
from lib.runs import load_table_entry
from lib.vectors import (
    TextVectorsSpec,
    VectorTokenizerSpec,
    check_names,
    check_vectors_meta,
    load_vector_run,
)
from tests.conftest import write_catalogue
from tests.models.test_training import N_ITEMS, tiny_split
from tests.test_embed import fake_encode, item_table
from tests.tokenizers.conftest import TINY, clusters

ROOT = Path(__file__).resolve().parent.parent
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)


# --- lib/vectors.py ---------------------------------------------------------------------------------------

def test_names_shared_between_tables_of_one_namespace_are_refused():
    check_names({"tokenizers": ["rqvae", "opq"], "vector_tokenizers": ["rqvae_title"], "none": None}, "x/<name>")
    with pytest.raises(ConfigError, match=r"'rqvae' is a key of tokenizers and vector_tokenizers: each would "
                                          r"write data/tokenizers/<name>"):
        check_names({"tokenizers": ["rqvae"], "vector_tokenizers": ["rqvae", "x"]}, "data/tokenizers/<name>")


def test_vectors_meta_must_name_the_vectors_and_a_protocol_the_reader_may_use():
    check_vectors_meta({"name": "title", "protocol": None}, "title", "loo", "m.json")  # text: any protocol
    check_vectors_meta({"name": "collab", "protocol": "gts"}, "collab", "gts", "m.json")
    with pytest.raises(ValueError, match="m.json holds vectors 'collab', not 'title'"):
        check_vectors_meta({"name": "collab", "protocol": None}, "title", "gts", "m.json")
    with pytest.raises(ValueError, match="of protocol 'gts'.*reader is of protocol 'loo'"):
        check_vectors_meta({"name": "collab", "protocol": "gts"}, "collab", "loo", "m.json")


def test_vector_run_entries_are_checked_and_name_their_key():
    params = {"sasrec": {"train": {"seed": 7}},
              "vector_rankers": {"r": {"vectors": "title", "backbone": "sasrec", "protocol": "gts",
                                       "set": {"train.max_epochs": 3}}}}
    vectors, spec, cfg = load_vector_run(params, "vector_rankers", "r", SeqRecConfig)
    assert vectors == "title" and spec.representation == "content_init"  # the content family's first
    assert cfg.train.max_epochs == 3 and cfg.train.seed == 7
    for bad, match in (({"vectors": None}, r"vector_rankers.r.vectors: required"),
                       ({"representation": "sid_unigram"}, r"vector_rankers.r.representation: 'sid_unigram'"),
                       ({"tokenizer": "rqvae"}, r"vector_rankers.r.tokenizer: not used"),
                       ({"set": {"train.max_epoch": 1}}, r"vector_rankers.r.set.train.max_epoch"),
                       ({"protocl": "gts"}, r"vector_rankers.r: unknown key")):
        entry = {**params["vector_rankers"]["r"], **bad}
        with pytest.raises(ConfigError, match=match):
            load_vector_run({**params, "vector_rankers": {"r": entry}}, "vector_rankers", "r", SeqRecConfig)
    with pytest.raises(ConfigError, match="vector_rankers.nope: no such entry"):
        load_vector_run(params, "vector_rankers", "nope", SeqRecConfig)


def test_real_vector_tables_load_and_agree():
    from lib.tokenizers.rqvae import RQVAEConfig
    text, collab = PARAMS["text_vectors"], PARAMS["collab_vectors"]
    check_names({"text_vectors": text, "collab_vectors": collab}, "data/vectors/<name>")
    for name in text:
        _, cfg = load_table_entry(PARAMS, "text_vectors", name, "embed", EmbedConfig, TextVectorsSpec)
        assert isinstance(cfg, EmbedConfig)
    assert load_table_entry(PARAMS, "text_vectors", "title", "embed", EmbedConfig, TextVectorsSpec)[1].template == \
        "title"
    assert load_table_entry(PARAMS, "text_vectors", "wordllama", "embed", EmbedConfig, TextVectorsSpec)[1].model == \
        WORDLLAMA
    for name in PARAMS["vector_tokenizers"]:
        spec, _ = load_table_entry(PARAMS, "vector_tokenizers", name, "rqvae", RQVAEConfig, VectorTokenizerSpec)
        assert spec.vectors in {**text, **collab} and spec.protocol in PARAMS["protocols"]
    runs = {n for family in PARAMS["runs"].values() for n in family}
    assert not runs & set(PARAMS["vector_rankers"]), "results/<name> is shared with the runs table"
    for name in PARAMS["vector_rankers"]:
        vectors, spec, _ = load_vector_run(PARAMS, "vector_rankers", name, SeqRecConfig)
        assert vectors in {**text, **collab} and spec.protocol in PARAMS["protocols"]
        if vectors in collab:
            assert collab[vectors]["protocol"] == spec.protocol
    assert set(PARAMS["study"]["content_reps"]) <= runs | set(PARAMS["vector_rankers"])


# --- stage text_vectors -----------------------------------------------------------------------------------

@pytest.fixture
def items() -> pd.DataFrame:
    return item_table([("Red Nail Polish", "Long lasting.", "Acme", "Beauty > Makeup > Nails", 4.5),
                       ("Shampoo", "", "", "Beauty > Hair", np.nan),
                       ("", "", "", "Beauty > Tools", np.nan),
                       ("Red Nail Polish", "Other text.", "Other", "Beauty > Makeup", 1.0)])  # same title as 1


@pytest.fixture
def stages(monkeypatch):
    """The stage modules as the scripts import each other (siblings), with a fake encoder and no thread pin."""
    monkeypatch.syspath_prepend(str(ROOT / "stages"))
    import text_vectors

    import embed
    loaded = []

    def fake_load(cfg):
        loaded.append(cfg)
        return fake_encode, {"model": cfg.model, "path": "fake", "dim": 8, "max_seq_length": 16, "device": "cpu"}

    monkeypatch.setattr(embed, "load_encoder", fake_load)
    monkeypatch.setattr(embed, "pin_threads", lambda n: None)  # in-process: leave this pytest's threads alone
    return embed, text_vectors, loaded


def test_text_vectors_stage_is_the_embed_stage_under_its_overrides(tmp_path, items, stages, monkeypatch):
    embed, text_vectors, loaded = stages
    items.to_parquet(tmp_path / "items.parquet")
    params = {"embed": {"model": "fake", "template": "all", "batch_size": 2},
              "text_vectors": {"title": {"set": {"template": "title"}}}, "collab_vectors": {"c": {}}}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    out = tmp_path / "vectors/title"
    text_vectors.main(["--name", "title", "--items", str(tmp_path / "items.parquet"), "--out-dir", str(out),
                       "--metrics", str(tmp_path / "m.json"), "--params", str(tmp_path / "params.yaml")])
    assert loaded[0] == EmbedConfig(model="fake", template="title", batch_size=2)  # section + overrides
    emb, meta = np.load(out / "embeddings.npy"), json.loads((out / "meta.json").read_text())
    np.testing.assert_array_equal(emb, embed_items(items, loaded[0], fake_encode)[0])
    np.testing.assert_array_equal(emb[1], emb[4])  # the title alone: items 1 and 4 are one text
    assert meta["name"] == "title" and meta["protocol"] is None and meta["template"] == "title"
    assert meta["n_items"] == 4 and meta["dim"] == 8 and meta["source"] == "name:fake"
    assert json.loads((tmp_path / "m.json").read_text())["name"] == "title"
    # the embed stage itself, on a params file whose `embed` section is the overridden one: the same bytes
    (tmp_path / "direct.yaml").write_text(yaml.safe_dump({"embed": {**params["embed"], "template": "title"}}))
    monkeypatch.setattr(sys, "argv", ["embed.py", "--items", str(tmp_path / "items.parquet"), "--out-dir",
                                      str(tmp_path / "direct"), "--metrics", str(tmp_path / "d.json"),
                                      "--params", str(tmp_path / "direct.yaml")])
    embed.main()
    assert (tmp_path / "direct/embeddings.npy").read_bytes() == (out / "embeddings.npy").read_bytes()
    direct = json.loads((tmp_path / "direct/meta.json").read_text())
    assert {k: v for k, v in meta.items() if k not in ("name", "protocol")} == direct


def test_text_vectors_stage_errors_name_the_key(tmp_path, items, stages):
    _, text_vectors, _ = stages
    items.to_parquet(tmp_path / "items.parquet")
    args = ["--name", "t", "--items", str(tmp_path / "items.parquet"), "--out-dir", str(tmp_path / "o"),
            "--metrics", str(tmp_path / "m.json"), "--params", str(tmp_path / "params.yaml")]
    for params, match in (({"text_vectors": {"t": {"set": {"templat": "title"}}}}, "text_vectors.t.set.templat"),
                          ({"text_vectors": {"t": {"set": {"template": "nope"}}}}, "embed.template"),
                          ({"text_vectors": {"t": {}}, "collab_vectors": {"t": {}}},
                           "'t' is a key of text_vectors and collab_vectors")):
        (tmp_path / "params.yaml").write_text(yaml.safe_dump({"embed": {"model": "fake"}, **params}))
        with pytest.raises(SystemExit, match=match):
            text_vectors.main(args)
    assert not (tmp_path / "o").exists()


def test_text_vectors_stage_with_the_shipped_wordllama(tmp_path, items):
    """The real second encoder, offline, as dvc.yaml runs the stage (a subprocess): WordLlama's 256 dims,
    named by its package in meta.json."""
    pytest.importorskip("wordllama")
    items.to_parquet(tmp_path / "items.parquet")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "embed": {"device": "cpu"}, "text_vectors": {"wl": {"set": {"model": WORDLLAMA}}}}))
    p = _run([sys.executable, str(ROOT / "stages/text_vectors.py"), "--name", "wl", "--items",
              str(tmp_path / "items.parquet"), "--out-dir", str(tmp_path / "wl"), "--metrics", str(tmp_path / "m.json"),
              "--params", str(tmp_path / "params.yaml")], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    emb, meta = np.load(tmp_path / "wl/embeddings.npy"), json.loads((tmp_path / "wl/meta.json").read_text())
    assert emb.shape == (5, 256) and not emb[0].any()
    np.testing.assert_allclose(np.linalg.norm(emb[1:], axis=1), 1.0, atol=1e-4)
    assert meta["model"] == WORDLLAMA and meta["source"].startswith("pypi:wordllama==")
    assert meta["name"] == "wl" and meta["protocol"] is None and meta["max_seq_length"] is None


# --- stage vector_tokenizer on text vectors ---------------------------------------------------------------

def _split(d: Path, train_items: range, n_items: int = 20) -> Path:
    d.mkdir(parents=True)
    train = pd.DataFrame({"user": 0, "item": list(train_items), "timestamp": 1})
    train.to_parquet(d / "train.parquet")
    train.to_parquet(d / "train_full.parquet")
    (d / "split.json").write_text(json.dumps({"retrain_on_validation": False}))
    write_catalogue(d, n_items)
    return d


def test_vector_tokenizer_fits_text_vectors_on_its_own_protocols_training_items(tmp_path):
    n = 20
    np.save(tmp_path / "emb.npy", clusters(n_clusters=4, per=5, dim=8))  # (21, 8)
    (tmp_path / "meta.json").write_text(json.dumps({"name": "tv", "protocol": None, "model": "fake", "dim": 8,
                                                     "n_items": n}))
    splits = {"gts": _split(tmp_path / "gts", range(1, 19)), "loo": _split(tmp_path / "loo", range(1, 16))}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "rqvae": {**TINY, "hidden": [32], "method": "rqkmeans"}, "tokenizers": {"rqvae": {"protocol": "gts"}},
        "vector_tokenizers": {"tg": {"vectors": "tv", "protocol": "gts"}, "tl": {"vectors": "tv", "protocol": "loo"},
                              "tw": {"vectors": "other", "protocol": "gts"}}}))

    def args(name: str, protocol: str) -> list[str]:
        return [sys.executable, str(ROOT / "stages/vector_tokenizer.py"), "--name", name,
                "--embeddings", str(tmp_path / "emb.npy"), "--embed-meta", str(tmp_path / "meta.json"),
                "--split-dir", str(splits[protocol]), "--out-dir", str(tmp_path / "tok" / name),
                "--metrics", str(tmp_path / f"{name}.json"), "--plots-dir", str(tmp_path / "plots" / name),
                "--params", str(tmp_path / "params.yaml")]

    for name, protocol, fit in (("tg", "gts", 18), ("tl", "loo", 15)):  # text vectors serve any protocol
        p = _run(args(name, protocol), tmp_path)
        assert p.returncode == 0, p.stderr[-3000:]
        codes = np.load(tmp_path / f"tok/{name}/codes.npy")
        meta = json.loads((tmp_path / f"tok/{name}/meta.json").read_text())
        assert codes.shape == (n + 1, 3) and len(np.unique(codes[1:], axis=0)) == n  # unique Semantic IDs
        assert meta["name"] == name and meta["protocol"] == protocol and meta["fit_item_count"] == fit
        assert meta["embeddings"] == {"model": "fake", "dim": 8}
    p = _run(args("tw", "gts"), tmp_path)
    assert p.returncode != 0 and "holds vectors 'tv', not 'other'" in p.stderr and "Traceback" not in p.stderr


# --- stages train_vector_rankers + evaluate on a tiny split -----------------------------------------------

SASREC = {"model": {"d_model": 16, "n_layers": 1, "n_heads": 1, "dropout": 0.0, "max_len": 8},
          "train": {"max_epochs": 2, "patience": 2, "batch_size": 16, "lr": 0.01, "device": "cpu", "threads": 1},
          "top_k": 5}
ENTRY = {"backbone": "sasrec", "representation": "content_plus_id", "protocol": "gts", "set": {"train.max_epochs": 1}}


@pytest.fixture(scope="module")
def ranker_inputs(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("vector_ranker")
    train, val = tiny_split()
    train = train[train["item"] != N_ITEMS]  # the last item gets no training interaction: cold
    split = tmp / "split"
    split.mkdir()
    train.to_parquet(split / "train.parquet")
    train.to_parquet(split / "train_full.parquet")
    val = val.assign(history_length=val["history"].map(len), target_cold=val["target"] == N_ITEMS, user_cold=False)
    val.to_parquet(split / "val.parquet")  # the split stage's columns (the evaluator's slices)
    val.to_parquet(split / "test.parquet")
    (split / "split.json").write_text(json.dumps({"retrain_on_validation": False}))
    write_catalogue(split, N_ITEMS)
    pd.DataFrame({"item": np.arange(1, N_ITEMS + 1)}).to_parquet(tmp / "items.parquet")
    vec = tmp / "vectors"
    vec.mkdir()
    np.save(vec / "embeddings.npy", clusters(n_clusters=4, per=5, dim=8))  # (N+1, 8)
    (vec / "meta.json").write_text(json.dumps({"name": "tv", "protocol": None, "n_items": N_ITEMS, "dim": 8}))
    (tmp / "params.yaml").write_text(yaml.safe_dump({
        "sasrec": SASREC, "evaluate": {"ks": [1, 5], "control_k": 5},
        "vector_rankers": {"vr": {"vectors": "tv", **ENTRY}, "vloo": {"vectors": "tv", **ENTRY, "protocol": "loo"},
                           "clash": {"vectors": "tv", **ENTRY}, "other": {"vectors": "nope", **ENTRY}},
        "runs": {"content_rankers": {"same": ENTRY, "clash": ENTRY}}}))
    return tmp


def _train_args(tmp: Path, out: Path, script: str, run: str) -> list[str]:
    head = ([str(ROOT / "stages/train_vector_ranker.py"), "--embed-meta", str(tmp / "vectors/meta.json")]
            if script == "vector" else [str(ROOT / "stages/train_seqrec.py"), "--family", "content_rankers"])
    return [sys.executable, *head, "--run", run, "--split-dir", str(tmp / "split"),
            "--items", str(tmp / "items.parquet"), "--embeddings", str(tmp / "vectors/embeddings.npy"),
            "--model-dir", str(out / "model"), "--recs-dir", str(out / "recs"), "--metrics", str(out / "m.json"),
            "--plots-dir", str(out / "plots"), "--run-info", str(out / "run.json"),
            "--params", str(tmp / "params.yaml")]


def test_vector_ranker_is_a_content_run_on_the_vectors_and_run_json_names_them(ranker_inputs, tmp_path):
    tmp = ranker_inputs
    p = _run(_train_args(tmp, tmp_path / "vr", "vector", "vr"), tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    p = _run(_train_args(tmp, tmp_path / "same", "seqrec", "same"), tmp_path)  # the same entry in `runs`
    assert p.returncode == 0, p.stderr[-3000:]
    for s in ("val", "test"):  # the same training on the same vectors: the same lists
        assert pd.read_parquet(tmp_path / f"vr/recs/{s}.parquet").equals(
            pd.read_parquet(tmp_path / f"same/recs/{s}.parquet"))
    run, same = (json.loads((tmp_path / f"{r}/run.json").read_text()) for r in ("vr", "same"))
    assert run == {**same, "name": "vr", "vectors": "tv"}
    assert run["family"] == "content_rankers" and run["representation"] == "content_plus_id"
    m = json.loads((tmp_path / "vr/m.json").read_text())
    assert m["model"] == "vr" and m["epochs"] == 1 and m["zeroed_id_rows"] == 1  # set: {train.max_epochs: 1}
    # evaluate_vector_rankers@vr: the evaluate stage as it is, on the run's lists and run.json
    p = _run([sys.executable, str(ROOT / "stages/evaluate.py"), "--run-info", str(tmp_path / "vr/run.json"),
              "--split-dir", str(tmp / "split"), "--items", str(tmp / "items.parquet"),
              "--recs-dir", str(tmp_path / "vr/recs"), "--metrics", str(tmp_path / "eval.json"),
              "--per-user", str(tmp_path / "ranks.parquet"), "--params", str(tmp / "params.yaml")], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["run"] == "vr" and ev["protocol"] == "gts" and 0 <= ev["test/ndcg@5"] <= 1


def test_vector_ranker_input_errors_are_named(ranker_inputs, tmp_path):
    tmp = ranker_inputs
    for run, match in (("clash", "'clash' is a key of runs.content_rankers and vector_rankers"),
                       ("other", "holds vectors 'tv', not 'nope'"),
                       ("nope", "vector_rankers.nope: no such entry")):
        p = _run(_train_args(tmp, tmp_path / run, "vector", run), tmp_path)
        assert p.returncode != 0 and match in p.stderr and "Traceback" not in p.stderr, p.stderr[-2000:]
        assert not (tmp_path / run / "run.json").exists()
    meta = tmp / "vectors/meta.json"
    text = meta.read_text()
    try:
        meta.write_text(json.dumps({**json.loads(text), "protocol": "gts"}))  # vectors built from gts's training data
        p = _run(_train_args(tmp, tmp_path / "vloo", "vector", "vloo"), tmp_path)
        assert p.returncode != 0 and "reader is of protocol 'loo'" in p.stderr
    finally:
        meta.write_text(text)
