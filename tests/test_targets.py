"""stages/targets.py: the run sets the Makefile trains (params `study`), longest lanes first."""
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
PARAMS = {"runs": {"rankers": {"a": {"backbone": "sasrec", "protocol": "gts"}},
                   "generators": {"g": {"backbone": "gpt2", "tokenizer": "t", "protocol": "gts"}},
                   "parallel_generators": {"r": {"backbone": "gpt2", "tokenizer": "u", "protocol": "loo"}}},
          "tokenizers": {"t": {"protocol": "gts"}, "u": {"protocol": "loo"}},
          "study": {"core": ["a", "g"], "bad": ["a", "nope"]}}


def targets(tmp: Path, *args: str, params: dict = PARAMS) -> subprocess.CompletedProcess:
    (tmp / "params.yaml").write_text(yaml.safe_dump(params))
    return subprocess.run([sys.executable, str(ROOT / "stages/targets.py"), *args, "--params",
                           str(tmp / "params.yaml")], capture_output=True, text=True, cwd=ROOT)


def test_run_sets_and_their_upstream(tmp_path):
    assert targets(tmp_path, "runs", "core").stdout.split() == ["generators@g", "rankers@a"]
    assert targets(tmp_path, "runs", "all").stdout.split()[-1] == "rankers@a"  # generator families first
    assert targets(tmp_path, "upstream", "core").stdout.split() == ["split@gts", "embed", "tokenizer@t"]
    assert targets(tmp_path, "upstream", "all").stdout.split() == ["split@gts", "split@loo", "embed",
                                                                   "tokenizer@t", "tokenizer@u"]


def test_unknown_sets_and_runs_are_named(tmp_path):
    p = targets(tmp_path, "runs", "protocol")
    assert p.returncode != 0 and "no run set 'protocol'" in p.stderr
    p = targets(tmp_path, "runs", "bad")
    assert p.returncode != 0 and "['nope']" in p.stderr


def test_collaborative_tokenizers_bring_their_vectors_stage(tmp_path):
    """A run on a collab_tokenizers entry needs collab_vectors@<vectors> (whose `dvc repro` trains the
    ranker it reads) and collab_tokenizer@<name>; the two tokenizer tables must not share a name."""
    params = {**PARAMS, "collab_vectors": {"cv": {"run": "a", "protocol": "gts"}},
              "collab_tokenizers": {"tc": {"vectors": "cv", "protocol": "gts"}},
              "study": {"collab": ["a", "g", "c"]}}
    params["runs"] = {**PARAMS["runs"], "generators": {**PARAMS["runs"]["generators"],
                                                       "c": {"backbone": "gpt2", "tokenizer": "tc", "protocol": "gts"}}}
    assert targets(tmp_path, "upstream", "collab", params=params).stdout.split() == [
        "split@gts", "embed", "tokenizer@t", "collab_vectors@cv", "collab_tokenizer@tc"]
    params["collab_tokenizers"]["t"] = {"vectors": "cv", "protocol": "gts"}
    p = targets(tmp_path, "upstream", "collab", params=params)
    assert p.returncode != 0 and "['t'] are also keys of params `tokenizers`" in p.stderr
    del params["collab_tokenizers"]["t"]
    params["runs"]["generators"]["c"]["tokenizer"] = "nope"
    p = targets(tmp_path, "upstream", "collab", params=params)
    assert p.returncode != 0 and "['nope']" in p.stderr
