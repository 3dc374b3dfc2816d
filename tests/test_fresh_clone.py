"""A fresh clone reads the committed tokenizer codes and recomputes the rest to the same bytes.

In a scratch repository on synthetic raw files, a tokenizer is fit through `dvc repro` (its item vectors by the
shipped MiniLM, offline) and everything is committed. A `git clone` of it has no DVC cache and no data: the
Makefile's two steps — recompute the splits and text vectors, then `dvc repro --allow-missing` the rest —
must leave every file git tracks (dvc.lock included) unchanged and never refit the tokenizer.
"""
from __future__ import annotations

import pytest
import yaml

from tests.test_pipeline_e2e import _run
from tests.test_pipeline_e2e import repo as e2e_repo  # noqa: F401  (the scratch repository fixture)

TOKENIZER = "rqkmeans"
REBUILT = ["parse", "preprocess", "split@gts", "embed@minilm"]


@pytest.fixture(scope="module")
def committed(e2e_repo):  # noqa: F811  (the imported fixture)
    repo, _ = e2e_repo
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["rqvae"] |= {"levels": 2, "codebook_size": 4}  # 30 synthetic items
    params["embed"] |= {"batch_size": 16}
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for step in ("setup", "fit"):  # dvclive (the tokenizer's curves) wants a commit to exist
        if step == "fit":
            _run(["dvc", "repro", f"tokenizer@{TOKENIZER}"], repo)
        _run(["git", "add", "-A"], repo)
        _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", step], repo)
    return repo


def test_tokenizer_codes_are_committed_and_its_state_cached(committed):
    tracked = _run(["git", "ls-files"], committed).stdout.split()
    assert {f"codes/{TOKENIZER}/codes.npy", f"codes/{TOKENIZER}/meta.json"} <= set(tracked)
    data = [f for f in tracked if f.startswith(("data/tokenizers/", "data/vectors/")) and not f.endswith(".gitignore")]
    assert not data, data  # the method's state and the item vectors stay in the DVC cache


def test_a_fresh_clone_recomputes_to_the_same_bytes_and_never_refits(committed, tmp_path):
    clone = tmp_path / "clone"
    _run(["git", "clone", "-q", str(committed), str(clone)], tmp_path)
    assert not (clone / "data/vectors/minilm/embeddings.npy").exists() and not (clone / ".dvc/cache").exists()
    _run(["dvc", "repro", *REBUILT], clone)
    log = _run(["dvc", "repro", "--allow-missing", f"tokenizer@{TOKENIZER}"], clone).stdout
    assert f"Stage 'tokenizer@{TOKENIZER}' didn't change, skipping" in log and "Running stage" not in log
    assert _run(["git", "status", "--porcelain"], clone).stdout == ""  # same bytes: dvc.lock, codes, metrics
