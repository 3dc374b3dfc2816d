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


def test_tokenizers_and_runs_on_other_vectors_bring_their_vectors_stages(tmp_path):
    """A run on a vector_tokenizers entry needs that vector_tokenizer@<name> and the stage of its vectors:
    collab_vectors@<v> (whose `dvc repro` trains the ranker it reads) or text_vectors@<v>; a vector_rankers
    run is `vector_rankers@<run>` and needs its vectors' stage. Tables sharing a namespace share no name."""
    params = {**PARAMS, "collab_vectors": {"cv": {"run": "a", "protocol": "gts"}},
              "text_vectors": {"tv": {"set": {"template": "title"}}},
              "vector_tokenizers": {"tc": {"vectors": "cv", "protocol": "gts"},
                                    "tt": {"vectors": "tv", "protocol": "loo"}},
              "vector_rankers": {"vr": {"vectors": "tv", "backbone": "sasrec", "representation": "content",
                                        "protocol": "gts"}},
              "study": {"collab": ["a", "g", "c"], "text": ["vr", "d"]}}
    params["runs"] = {**PARAMS["runs"], "generators": {**PARAMS["runs"]["generators"],
                                                       "c": {"backbone": "gpt2", "tokenizer": "tc", "protocol": "gts"},
                                                       "d": {"backbone": "gpt2", "tokenizer": "tt", "protocol": "loo"}}}
    assert targets(tmp_path, "upstream", "collab", params=params).stdout.split() == [
        "split@gts", "embed", "tokenizer@t", "collab_vectors@cv", "vector_tokenizer@tc"]
    assert targets(tmp_path, "upstream", "text", params=params).stdout.split() == [
        "split@gts", "split@loo", "embed", "text_vectors@tv", "vector_tokenizer@tt"]
    assert targets(tmp_path, "runs", "text", params=params).stdout.split() == ["generators@d", "vector_rankers@vr"]
    assert "vector_rankers@vr" in targets(tmp_path, "runs", "all", params=params).stdout.split()
    params["vector_tokenizers"]["t"] = {"vectors": "cv", "protocol": "gts"}
    p = targets(tmp_path, "upstream", "collab", params=params)
    assert p.returncode != 0 and "'t' is a key of tokenizers and vector_tokenizers" in p.stderr
    del params["vector_tokenizers"]["t"]
    params["vector_rankers"]["a"] = params["vector_rankers"]["vr"]
    p = targets(tmp_path, "runs", "text", params=params)
    assert p.returncode != 0 and "'a' is a key of runs.rankers and vector_rankers" in p.stderr
    del params["vector_rankers"]["a"]
    params["text_vectors"]["cv"] = {}
    p = targets(tmp_path, "upstream", "text", params=params)
    assert p.returncode != 0 and "'cv' is a key of text_vectors and collab_vectors" in p.stderr
    del params["text_vectors"]["cv"]
    params["vector_rankers"]["vr"]["vectors"] = "nope"
    p = targets(tmp_path, "upstream", "text", params=params)
    assert p.returncode != 0 and "vectors in neither" in p.stderr and "['nope']" in p.stderr
    params["runs"]["generators"]["c"]["tokenizer"] = "nope"
    p = targets(tmp_path, "upstream", "collab", params=params)
    assert p.returncode != 0 and "['nope']" in p.stderr


def test_real_content_representation_set():
    """study.content_reps: the content runs and the generator on each item text / encoder, and the stages
    that build their vectors and codes."""
    def real(*args: str) -> list[str]:
        p = subprocess.run([sys.executable, str(ROOT / "stages/targets.py"), *args], capture_output=True, text=True,
                           cwd=ROOT)
        assert p.returncode == 0, p.stderr
        return p.stdout.split()
    assert real("runs", "content_reps") == [
        "generators@gpt2_sid", "generators@gpt2_sid_title", "generators@gpt2_sid_wordllama",
        "content_rankers@sasrec_content_plus_id", "content_rankers@sasrec_content",
        "vector_rankers@sasrec_content_plus_id_title", "vector_rankers@sasrec_content_title",
        "vector_rankers@sasrec_content_plus_id_wordllama", "vector_rankers@sasrec_content_wordllama"]
    assert real("upstream", "content_reps") == [
        "split@gts", "embed", "text_vectors@title", "text_vectors@wordllama", "tokenizer@rqvae",
        "vector_tokenizer@rqvae_title", "vector_tokenizer@rqvae_wordllama"]
    assert {"vector_rankers@sasrec_content_title", "generators@gpt2_sid_collab"} <= set(real("runs", "all"))
