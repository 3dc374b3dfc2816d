"""tools/refit_check.py: a tokenizer refit whose only change is wall-clock time keeps the committed lock;
any other difference is reported and nothing is restored. A git repository the test makes itself."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
import refit_check  # noqa: E402

METRICS = "metrics/tokenizers/t.json"
FACTS = {"method": "opq", "collision_rate": 0.003, "fit_seconds": 124.8, "peak_memory_mb": 597.4}


def entry(metrics_md5: str, codes_md5: str = "c0.dir", cmd: str = "python stages/tokenizer.py --name t") -> dict:
    return {"cmd": cmd, "deps": [{"path": "lib/tokenizers", "md5": "d0.dir"}],
            "params": {"params.yaml": {"tokenizers.t": {"vectors": "minilm"}}},
            "outs": [{"path": "codes/t", "md5": codes_md5}, {"path": METRICS, "md5": metrics_md5}]}


def write(repo: Path, stages: dict, facts: dict) -> None:
    (repo / "dvc.lock").write_text(yaml.safe_dump({"schema": "2.0", "stages": stages}))
    (repo / METRICS).write_text(json.dumps(facts))


@pytest.fixture
def repo(tmp_path) -> Path:
    (tmp_path / "metrics/tokenizers").mkdir(parents=True)
    write(tmp_path, {"split@gts": {"cmd": "split", "outs": [{"path": "s", "md5": "s0"}]}, "tokenizer@t": entry("m0")},
          FACTS)
    for cmd in (["init", "-q"], ["add", "-A"],
                ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "fit"]):
        subprocess.run(["git", *cmd], cwd=tmp_path, check=True)
    return tmp_path


def refit(repo: Path, facts: dict, **changes) -> None:
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    stages["tokenizer@t"] = entry("m1", **changes)
    write(repo, stages, facts)


def dirty(repo: Path) -> str:
    return subprocess.run(["git", "status", "--porcelain"], cwd=repo, capture_output=True, text=True).stdout


def test_a_refit_that_differs_only_in_its_timings_keeps_the_committed_lock(repo):
    refit(repo, {**FACTS, "fit_seconds": 159.2, "peak_memory_mb": 611.0})
    assert dirty(repo)
    assert refit_check.main(["--repo", str(repo)]) == 0
    assert dirty(repo) == ""  # the committed lock and metrics are back
    assert json.loads((repo / METRICS).read_text())["fit_seconds"] == 124.8


@pytest.mark.parametrize("facts, changes, reason", [
    ({**FACTS, "collision_rate": 0.004}, {}, "a metric other than a timing"),
    ({**FACTS, "fit_seconds": 1.0}, {"codes_md5": "c1.dir"}, "other codes"),
    (FACTS, {"cmd": "python stages/tokenizer.py --name t --other"}, "another command"),
])
def test_any_other_difference_is_reported_and_nothing_is_restored(repo, facts, changes, reason, capsys):
    refit(repo, facts, **changes)
    before = dirty(repo)
    assert refit_check.main(["--repo", str(repo)]) == 1, reason
    assert "differs:" in capsys.readouterr().err
    assert dirty(repo) == before  # left for the user to see


def test_a_changed_entry_of_another_stage_is_not_a_refit(repo):
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    stages["split@gts"]["outs"][0]["md5"] = "s1"
    write(repo, stages, FACTS)
    assert refit_check.main(["--repo", str(repo)]) == 1


def test_new_entries_are_left_as_they_are(repo, capsys):
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    stages["tokenizer@u"] = entry("m9")
    stages["tokenizer@t"] = entry("m1")
    write(repo, stages, {**FACTS, "fit_seconds": 3.0})
    assert refit_check.main(["--repo", str(repo)]) == 0
    assert "tokenizer@u" in yaml.safe_load((repo / "dvc.lock").read_text())["stages"]  # not restored away
    assert "left as is" in capsys.readouterr().out


def test_an_unchanged_lock_is_as_committed(repo, capsys):
    assert refit_check.main(["--repo", str(repo)]) == 0
    assert "as committed" in capsys.readouterr().out


def test_other_uncommitted_entries_keep_the_lock_as_it_is(repo, capsys):
    """Checking only the refit stages: a run trained since (its entry uncommitted) is not undone."""
    stages = yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    stages["train@a"] = {"cmd": "train", "outs": [{"path": "m", "md5": "m0"}]}
    stages["tokenizer@t"] = entry("m1")
    write(repo, stages, {**FACTS, "fit_seconds": 3.0})
    assert refit_check.main(["--repo", str(repo), "tokenizer@t", "split@gts"]) == 0
    assert "train@a" in yaml.safe_load((repo / "dvc.lock").read_text())["stages"]
    assert "not restored" in capsys.readouterr().out
