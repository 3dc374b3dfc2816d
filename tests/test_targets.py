"""tools/targets.py: the run sets the Makefile trains (params `study`) and the stages they need, read from the
graph DVC builds of the repository's dvc.yaml (no data needed)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
PARAMS = {"protocols": {"gts": {}, "loo": {}},
          "vectors": {"embed": {"minilm": {}, "title": {"set": {"template": "title"}}},
                      "collab": {"cv": {"vectors": "minilm", "run": "a", "protocol": "gts"}}},
          "tokenizers": {"t": {"vectors": "minilm", "protocol": "gts"}, "u": {"vectors": "title", "protocol": "loo"},
                         "tc": {"vectors": "cv", "protocol": "gts"}},
          "runs": {"rankers": {"a": {"backbone": "sasrec", "protocol": "gts"}},
                   "content_rankers": {"ct": {"backbone": "sasrec", "vectors": "title", "protocol": "gts"}},
                   "generators": {"g": {"backbone": "gpt2", "tokenizer": "t", "protocol": "gts"},
                                  "c": {"backbone": "gpt2", "tokenizer": "tc", "protocol": "gts"}},
                   "parallel_generators": {"r": {"backbone": "gpt2", "tokenizer": "u", "protocol": "loo"}},
                   "code_rankers": {}},
          "parse": {"category": "Beauty"}, "decoding": {"run": "g", "tokenizer": "t", "protocol": "gts"},
          "compare": {},  # no other dataset's pipeline to compare answers with
          "study": {"core": ["a", "g"], "collab": ["c"], "title": ["ct", "r"], "bad": ["a", "nope"]}}


@pytest.fixture
def repo(tmp_path) -> Path:
    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    (tmp_path / ".dvc").mkdir()  # enough for DVC to open the repository (no git, no data)
    (tmp_path / ".dvc" / "config").write_text("[core]\n    no_scm = true\n    analytics = false\n")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(PARAMS))
    return tmp_path


def targets(repo: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / "tools/targets.py"), *args, "--repo", str(repo)],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)


def test_run_sets_generator_families_first(repo):
    assert targets(repo, "runs", "core").stdout.split() == ["generators@g", "rankers@a"]
    assert targets(repo, "runs", "all").stdout.split() == ["generators@c", "generators@g", "parallel_generators@r",
                                                          "rankers@a", "content_rankers@ct"]
    p = targets(repo, "runs", "protocol")
    assert p.returncode != 0 and "no run set 'protocol'" in p.stderr
    p = targets(repo, "runs", "bad")
    assert p.returncode != 0 and "['nope']" in p.stderr


def _ordered_before(order: list[str], first: str, then: str) -> bool:
    return order.index(first) < order.index(then)


def test_upstream_is_dvcs_graph_dependencies_first(repo):
    core = targets(repo, "upstream", "core").stdout.split()
    assert set(core) == {"parse", "preprocess", "split@gts", "embed@minilm", "tokenizer@t"}
    assert _ordered_before(core, "preprocess", "split@gts") and _ordered_before(core, "embed@minilm", "tokenizer@t")
    # collaborative codes: the ranker run whose rows they read is trained upstream, then its vectors, then the codes
    collab = targets(repo, "upstream", "collab").stdout.split()
    assert set(collab) == {"parse", "preprocess", "split@gts", "embed@minilm", "train_rankers@a", "collab_vectors@cv",
                           "tokenizer@tc"}
    assert _ordered_before(collab, "train_rankers@a", "collab_vectors@cv")
    assert _ordered_before(collab, "collab_vectors@cv", "tokenizer@tc")
    title = targets(repo, "upstream", "title").stdout.split()
    assert {"embed@title", "split@loo", "tokenizer@u"} <= set(title) and "embed@minilm" not in title


def test_a_second_pipeline_in_a_subdirectory_is_addressed_on_its_own(repo):
    """A dataset's pipeline (yelp/: links to the root's dvc.yaml, its own params) has the root's stage names; each
    pipeline's targets are its own stages, and a tokenizer whose codes git ignores is refit by a fresh clone."""
    sub = repo / "sub"
    sub.mkdir()
    (sub / "dvc.yaml").symlink_to("../dvc.yaml")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["runs"]["rankers"]["only_sub"] = {"backbone": "sasrec", "protocol": "loo"}
    params["study"]["core"] = ["only_sub", "g"]
    (sub / "params.yaml").write_text(yaml.safe_dump(params))
    assert targets(sub, "runs", "core").stdout.split() == ["generators@g", "rankers@only_sub"]
    up = targets(sub, "upstream", "core").stdout.split()
    assert set(up) == {"parse", "preprocess", "split@gts", "split@loo", "embed@minilm", "tokenizer@t"}
    assert "split@loo" not in targets(repo, "upstream", "core").stdout.split()  # the root's graph is its own
    assert "tokenizer@t" not in targets(sub, "rebuilt", "core").stdout.split()  # no git: codes count as committed
    subprocess.run(["git", "init", "-q"], cwd=repo, check=True)
    (repo / ".gitignore").write_text("/sub/codes/\n")
    assert "tokenizer@t" in targets(sub, "rebuilt", "core").stdout.split()  # codes kept out of git: refit
    assert "tokenizer@t" not in targets(repo, "rebuilt", "core").stdout.split()


def test_a_name_two_tables_would_write_is_refused_by_dvc(repo):
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["vectors"]["collab"]["title"] = params["vectors"]["collab"]["cv"]  # both write data/vectors/title
    (repo / "params.yaml").write_text(yaml.safe_dump(params))
    p = targets(repo, "upstream", "core")
    assert p.returncode != 0 and "data/vectors/title" in (p.stdout + p.stderr)


def test_real_text_set():
    """study.text: the content runs and the generator on the bare title and on WordLlama, and the stages that
    build their vectors and codes."""
    def real(*args: str) -> list[str]:
        p = subprocess.run([sys.executable, str(ROOT / "tools/targets.py"), *args], capture_output=True, text=True,
                           cwd=ROOT, timeout=120)
        assert p.returncode == 0, p.stderr
        return p.stdout.split()
    assert real("runs", "text") == [
        "generators@gpt2_sid_title", "generators@gpt2_sid_wordllama",
        "content_rankers@sasrec_content_plus_id_title", "content_rankers@sasrec_content_title",
        "content_rankers@sasrec_content_plus_id_wordllama", "content_rankers@sasrec_content_wordllama"]
    assert set(real("upstream", "text")) == {
        "parse", "preprocess", "split@gts", "embed@title", "embed@wordllama",
        "tokenizer@rqvae_title", "tokenizer@rqvae_wordllama"}
    assert {"content_rankers@sasrec_content_title", "generators@gpt2_sid_collab"} <= set(real("runs", "all"))
