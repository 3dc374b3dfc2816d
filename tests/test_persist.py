"""A failed or killed re-run keeps the committed results: `persist` outputs replaced only on success (lib/io.py).

In a scratch DVC repository on synthetic raw files: a split and a tiny SASRec-ID run are built, then
  - a bad param makes `dvc repro split@gts` fail: metrics/split/gts.json is still the committed file (the
    cached split, which DVC removes before a run, comes back with `dvc checkout`);
  - a re-run of the training stage is killed (SIGKILL, the whole process group) mid-training: run.json,
    the training metrics and every curve file are the committed bytes, and once the params are back and
    `dvc checkout` restored the cached outputs DVC deleted, `dvc status` finds the stage up to date.
"""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from tests.test_pipeline_e2e import _env, _run
from tests.test_pipeline_e2e import repo as e2e_repo  # noqa: F401  (the scratch repository fixture)

RUN = "sasrec_id"
TINY = {"model": {"d_model": 8, "n_layers": 1, "n_heads": 1, "dropout": 0.0, "max_len": 8},
        "train": {"max_epochs": 2, "patience": 2, "batch_size": 16, "device": "cpu", "threads": 1}, "top_k": 5}
COMMITTED = (f"results/{RUN}/run.json", f"metrics/train/{RUN}.json", "metrics/split/gts.json")


def _set_params(repo: Path, edit) -> str:
    """Apply `edit` to the scratch repository's params; returns the text before, to put back."""
    before = (repo / "params.yaml").read_text()
    params = yaml.safe_load(before)
    edit(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    return before


def _snapshot(repo: Path) -> dict[str, bytes]:
    files = [repo / f for f in COMMITTED] + sorted((repo / "plots/train" / RUN).rglob("*"))
    return {str(f.relative_to(repo)): f.read_bytes() for f in files if f.is_file()}


@pytest.fixture(scope="module")
def trained(e2e_repo):  # noqa: F811  (the imported fixture)
    repo, _ = e2e_repo
    _set_params(repo, lambda p: p.update(sasrec={**p["sasrec"], **TINY}))
    _run(["git", "add", "-A"], repo)  # dvclive wants a commit to name its baseline
    _run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "scratch"], repo)
    _run(["dvc", "repro", f"train_rankers@{RUN}"], repo)
    return repo


def test_a_failed_rerun_keeps_the_committed_outputs(trained):
    before = _snapshot(trained)
    text = _set_params(trained, lambda p: p["split"].update(quantile=1.5))
    try:
        p = _run(["dvc", "repro", "split@gts"], trained, check=False)
        assert p.returncode != 0 and "quantile" in p.stdout + p.stderr
    finally:
        (trained / "params.yaml").write_text(text)
    assert _snapshot(trained) == before
    _run(["dvc", "checkout", "split@gts"], trained)  # the cached split DVC removed before the run comes back whole
    assert "up to date" in _run(["dvc", "status", "split@gts"], trained).stdout


def test_a_killed_training_rerun_keeps_the_committed_run(trained):
    before = _snapshot(trained)
    assert f"results/{RUN}/run.json" in before and any("/plots/" in k for k in before)
    text = _set_params(trained, lambda p: p["sasrec"]["train"].update(max_epochs=500, patience=500, seed=7))
    proc = subprocess.Popen(["dvc", "repro", "-s", f"train_rankers@{RUN}"], cwd=trained, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        scratch = trained / "plots/train"
        while time.monotonic() < deadline:  # until the new run has written curves into its scratch directory
            if any(f.name.endswith(".tsv") for d in scratch.glob(f".{RUN}.*.tmp") for f in d.rglob("*")):
                break
            assert proc.poll() is None, "the re-run ended before it was killed"
            time.sleep(0.2)
        else:
            pytest.fail("the re-run never started training")
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        (trained / "params.yaml").write_text(text)
    assert _snapshot(trained) == before  # committed files untouched, curves not half rewritten
    _run(["dvc", "checkout", f"train_rankers@{RUN}"], trained)  # the cached outputs DVC removed before the run
    status = _run(["dvc", "status", f"train_rankers@{RUN}"], trained).stdout
    assert "up to date" in status, status  # the killed run's scratch files (.*.tmp) are ignored by DVC
