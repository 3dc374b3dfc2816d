"""lib/vectors.py and the stages around data/vectors/<name>: embed@<name> (the `embed` section under an entry's
overrides), a tokenizer on text vectors, a content run on other vectors + evaluate on a tiny synthetic split; the
repository's tables load."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from lib.config import load_table_entry
from lib.embed import WORDLLAMA, EmbedConfig, embed_items
from lib.tokenizers.codes import TokenizerSpec
from lib.vectors import DEFAULT_VECTORS, KINDS, EmbedVectorsSpec, check_vectors_meta
from tests.conftest import write_catalogue
from tests.models.test_training import N_ITEMS, tiny_split
from tests.test_embed import fake_encode, item_table
from tests.tokenizers.conftest import TINY, clusters

ROOT = Path(__file__).resolve().parent.parent
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=300)


# --- lib/vectors.py ---------------------------------------------------------------------------------------

def test_vectors_meta_must_name_the_vectors_and_a_protocol_the_reader_may_use():
    check_vectors_meta({"name": "title", "protocol": None}, "title", "loo", "m.json")  # text: any protocol
    check_vectors_meta({"name": "collab", "protocol": "gts"}, "collab", "gts", "m.json")
    with pytest.raises(ValueError, match="m.json holds vectors 'collab', not 'title'"):
        check_vectors_meta({"name": "collab", "protocol": None}, "title", "gts", "m.json")
    with pytest.raises(ValueError, match="of protocol 'gts'.*reader is of protocol 'loo'"):
        check_vectors_meta({"name": "collab", "protocol": "gts"}, "collab", "loo", "m.json")


def test_real_vector_table_and_its_readers_agree():
    from lib.tokenizers.rqvae import RQVAEConfig
    table = PARAMS["vectors"]
    assert set(table) == set(KINDS) and DEFAULT_VECTORS in table["embed"]
    assert not set(table["embed"]) & set(table["collab"]), "two stages would write one data/vectors/<name>"
    for name in table["embed"]:
        assert isinstance(load_table_entry(PARAMS, "vectors.embed", name, "embed", EmbedConfig, EmbedVectorsSpec)[1],
                          EmbedConfig)
    assert load_table_entry(PARAMS, "vectors.embed", "title", "embed", EmbedConfig, EmbedVectorsSpec)[1].template == \
        "title"
    assert load_table_entry(PARAMS, "vectors.embed", "wordllama", "embed", EmbedConfig, EmbedVectorsSpec)[1].model == \
        WORDLLAMA
    protocol_of = {**{n: None for n in table["embed"]}, **{n: e["protocol"] for n, e in table["collab"].items()}}
    readers = [(f"tokenizers.{n}", e) for n, e in PARAMS["tokenizers"].items()] + \
        [(f"runs.content_rankers.{n}", e) for n, e in PARAMS["runs"]["content_rankers"].items()]
    for key, entry in readers:
        assert entry["vectors"] in protocol_of, f"{key}: no such vectors"
        assert protocol_of[entry["vectors"]] in (None, entry["protocol"]), f"{key}: vectors of another split"
    for name in PARAMS["tokenizers"]:
        load_table_entry(PARAMS, "tokenizers", name, "rqvae", RQVAEConfig, TokenizerSpec)


# --- stage embed@<name> --------------------------------------------------------------------------------------

@pytest.fixture
def items() -> pd.DataFrame:
    return item_table([("Red Nail Polish", "Long lasting.", "Acme", "Beauty > Makeup > Nails", 4.5),
                       ("Shampoo", "", "", "Beauty > Hair", np.nan),
                       ("", "", "", "Beauty > Tools", np.nan),
                       ("Red Nail Polish", "Other text.", "Other", "Beauty > Makeup", 1.0)])  # same title as 1


@pytest.fixture
def embed(monkeypatch):
    """stages/embed.py as a module, with a fake encoder (recording the configs it gets) and no thread pin."""
    monkeypatch.syspath_prepend(str(ROOT / "stages"))
    import embed
    loaded = []

    def fake_load(cfg):
        loaded.append(cfg)
        return fake_encode, {"model": cfg.model, "path": "fake", "dim": 8, "max_seq_length": 16, "device": "cpu"}

    monkeypatch.setattr(embed, "load_encoder", fake_load)
    monkeypatch.setattr(embed, "pin_threads", lambda n: None)  # in-process: leave this pytest's threads alone
    return embed, loaded


def _embed_args(tmp: Path, name: str, out: str = "o") -> list[str]:
    return ["--name", name, "--items", str(tmp / "items.parquet"), "--out-dir", str(tmp / out),
            "--metrics", str(tmp / f"{out}.json"), "--params", str(tmp / "params.yaml")]


def test_embed_stage_is_the_embed_section_under_the_entrys_overrides(tmp_path, items, embed):
    embed, loaded = embed
    items.to_parquet(tmp_path / "items.parquet")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "embed": {"model": "fake", "template": "all", "batch_size": 2},
        "vectors": {"embed": {"all": {}, "title": {"set": {"template": "title"}}}}}))
    embed.main(_embed_args(tmp_path, "title", "title"))
    embed.main(_embed_args(tmp_path, "all", "all"))
    assert loaded == [EmbedConfig(model="fake", template="title", batch_size=2),  # section + overrides
                      EmbedConfig(model="fake", template="all", batch_size=2)]
    title, full = (np.load(tmp_path / f"{n}/embeddings.npy") for n in ("title", "all"))
    np.testing.assert_array_equal(title, embed_items(items, loaded[0], fake_encode)[0])
    np.testing.assert_array_equal(title[1], title[4])  # the title alone: items 1 and 4 are one text
    assert not np.array_equal(full[1], full[4])
    meta = json.loads((tmp_path / "title/meta.json").read_text())
    assert meta["name"] == "title" and meta["protocol"] is None and meta["template"] == "title"
    assert meta["n_items"] == 4 and meta["dim"] == 8 and meta["source"] == "name:fake"
    assert json.loads((tmp_path / "title.json").read_text())["name"] == "title"


def test_embed_stage_errors_name_the_key(tmp_path, items, embed):
    embed, _ = embed
    items.to_parquet(tmp_path / "items.parquet")
    for entry, match in (({"set": {"templat": "title"}}, "vectors.embed.t.set.templat"),
                         ({"set": {"template": "nope"}}, "embed.template"),
                         ({"sett": {}}, "vectors.embed.t: unknown key")):
        (tmp_path / "params.yaml").write_text(yaml.safe_dump({"embed": {"model": "fake"},
                                                              "vectors": {"embed": {"t": entry}}}))
        with pytest.raises(SystemExit, match=match):
            embed.main(_embed_args(tmp_path, "t"))
    with pytest.raises(SystemExit, match="vectors.embed.nope: no such entry"):
        embed.main(_embed_args(tmp_path, "nope"))
    assert not (tmp_path / "o").exists()


def test_embed_stage_with_the_shipped_wordllama(tmp_path, items):
    """The real second encoder, offline, as dvc.yaml runs the stage (a subprocess): WordLlama's 256 dims,
    named by its package in meta.json."""
    pytest.importorskip("wordllama")
    items.to_parquet(tmp_path / "items.parquet")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "embed": {"device": "cpu"}, "vectors": {"embed": {"wl": {"set": {"model": WORDLLAMA}}}}}))
    p = _run([sys.executable, str(ROOT / "stages/embed.py"), *_embed_args(tmp_path, "wl", "wl")], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    emb, meta = np.load(tmp_path / "wl/embeddings.npy"), json.loads((tmp_path / "wl/meta.json").read_text())
    assert emb.shape == (5, 256) and not emb[0].any()
    np.testing.assert_allclose(np.linalg.norm(emb[1:], axis=1), 1.0, atol=1e-4)
    assert meta["model"] == WORDLLAMA and meta["source"].startswith("pypi:wordllama==")
    assert meta["name"] == "wl" and meta["protocol"] is None and meta["max_seq_length"] is None


# --- stage tokenizer on text vectors --------------------------------------------------------------------------

def _split(d: Path, train_items: range, n_items: int = 20) -> Path:
    d.mkdir(parents=True)
    train = pd.DataFrame({"user": 0, "item": list(train_items), "timestamp": 1})
    train.to_parquet(d / "train.parquet")
    train.to_parquet(d / "train_full.parquet")
    (d / "split.json").write_text(json.dumps({"retrain_on_validation": False}))
    write_catalogue(d, n_items)
    return d


def test_tokenizer_fits_text_vectors_on_its_own_protocols_training_items(tmp_path):
    n = 20
    np.save(tmp_path / "emb.npy", clusters(n_clusters=4, per=5, dim=8))  # (21, 8)
    (tmp_path / "meta.json").write_text(json.dumps({"name": "tv", "protocol": None, "model": "fake", "dim": 8,
                                                     "n_items": n}))
    splits = {"gts": _split(tmp_path / "gts", range(1, 19)), "loo": _split(tmp_path / "loo", range(1, 16))}
    (tmp_path / "params.yaml").write_text(yaml.safe_dump({
        "rqvae": {**TINY, "hidden": [32], "method": "rqkmeans"},
        "tokenizers": {"tg": {"vectors": "tv", "protocol": "gts"}, "tl": {"vectors": "tv", "protocol": "loo"},
                       "tw": {"vectors": "other", "protocol": "gts"}}}))

    def args(name: str, protocol: str) -> list[str]:
        return [sys.executable, str(ROOT / "stages/tokenizer.py"), "--name", name,
                "--embeddings", str(tmp_path / "emb.npy"), "--embed-meta", str(tmp_path / "meta.json"),
                "--split-dir", str(splits[protocol]), "--codes-dir", str(tmp_path / "tok" / name),
                "--state-dir", str(tmp_path / "state" / name),
                "--metrics", str(tmp_path / f"{name}.json"), "--plots-dir", str(tmp_path / "plots" / name),
                "--params", str(tmp_path / "params.yaml")]

    for name, protocol, fit in (("tg", "gts", 18), ("tl", "loo", 15)):  # text vectors serve any protocol
        p = _run(args(name, protocol), tmp_path)
        assert p.returncode == 0, p.stderr[-3000:]
        codes = np.load(tmp_path / f"tok/{name}/codes.npy")
        meta = json.loads((tmp_path / f"tok/{name}/meta.json").read_text())
        assert codes.shape == (n + 1, 3) and len(np.unique(codes[1:], axis=0)) == n  # unique Semantic IDs
        assert meta["name"] == name and meta["protocol"] == protocol and meta["fit_item_count"] == fit
        assert meta["vectors"] == "tv" and meta["embeddings"] == {"model": "fake", "dim": 8}
    p = _run(args("tw", "gts"), tmp_path)
    assert p.returncode != 0 and "holds vectors 'tv', not 'other'" in p.stderr and "Traceback" not in p.stderr


# --- a content run on other vectors + evaluate on a tiny split ------------------------------------------------

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
        "runs": {"content_rankers": {"vr": {"vectors": "tv", **ENTRY}, "vloo": {"vectors": "tv", **ENTRY,
                                                                                 "protocol": "loo"},
                                     "other": {"vectors": "nope", **ENTRY}}}}))
    return tmp


def _train_args(tmp: Path, out: Path, run: str) -> list[str]:
    return [sys.executable, str(ROOT / "stages/train_seqrec.py"), "--family", "content_rankers", "--run", run,
            "--split-dir", str(tmp / "split"), "--items", str(tmp / "items.parquet"),
            "--embeddings", str(tmp / "vectors/embeddings.npy"), "--embed-meta", str(tmp / "vectors/meta.json"),
            "--model-dir", str(out / "model"), "--recs-dir", str(out / "recs"), "--metrics", str(out / "m.json"),
            "--plots-dir", str(out / "plots"), "--run-info", str(out / "run.json"),
            "--params", str(tmp / "params.yaml")]


def test_content_run_on_other_vectors_names_them_in_run_json(ranker_inputs, tmp_path):
    tmp = ranker_inputs
    p = _run(_train_args(tmp, tmp_path / "vr", "vr"), tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    run = json.loads((tmp_path / "vr/run.json").read_text())
    assert run["vectors"] == "tv" and run["family"] == "content_rankers" and run["representation"] == "content_plus_id"
    m = json.loads((tmp_path / "vr/m.json").read_text())
    assert m["model"] == "vr" and m["epochs"] == 1 and m["zeroed_id_rows"] == 1  # set: {train.max_epochs: 1}
    assert (tmp_path / "vr/plots").is_dir() and not list(tmp_path.glob("vr/.*.tmp"))  # curves swapped in whole
    p = _run([sys.executable, str(ROOT / "stages/evaluate.py"), "--run-info", str(tmp_path / "vr/run.json"),
              "--split-dir", str(tmp / "split"), "--items", str(tmp / "items.parquet"),
              "--recs-dir", str(tmp_path / "vr/recs"), "--metrics", str(tmp_path / "eval.json"),
              "--per-user", str(tmp_path / "ranks.parquet"), "--params", str(tmp / "params.yaml")], tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    ev = json.loads((tmp_path / "eval.json").read_text())
    assert ev["run"] == "vr" and ev["protocol"] == "gts" and 0 <= ev["test/ndcg@5"] <= 1


def test_content_run_vector_errors_are_named(ranker_inputs, tmp_path):
    tmp = ranker_inputs
    for run, match in (("other", "holds vectors 'tv', not 'nope'"),
                       ("nope", "runs.content_rankers.nope: no such run")):
        p = _run(_train_args(tmp, tmp_path / run, run), tmp_path)
        assert p.returncode != 0 and match in p.stderr and "Traceback" not in p.stderr, p.stderr[-2000:]
        assert not (tmp_path / run / "run.json").exists()
    meta = tmp / "vectors/meta.json"
    text = meta.read_text()
    try:
        meta.write_text(json.dumps({**json.loads(text), "protocol": "gts"}))  # vectors built from gts's training data
        p = _run(_train_args(tmp, tmp_path / "vloo", "vloo"), tmp_path)
        assert p.returncode != 0 and "reader is of protocol 'loo'" in p.stderr
    finally:
        meta.write_text(text)


def test_the_report_knows_the_default_vectors():
    from lib.report.tables import DEFAULT_VECTORS as REPORT_DEFAULT
    from lib.report.tables import other_vectors
    assert REPORT_DEFAULT == DEFAULT_VECTORS
    assert other_vectors({"vectors": DEFAULT_VECTORS}) is None and other_vectors({}) is None  # runs before the table
    assert other_vectors({"vectors": "title"}) == "title"
