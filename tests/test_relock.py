"""benchmarks/relock.py: which dvc.lock entries a verified neutral change may re-record."""
import importlib.util
from pathlib import Path

import yaml

spec = importlib.util.spec_from_file_location("relock", Path(__file__).parent.parent / "benchmarks" / "relock.py")
relock_mod = importlib.util.module_from_spec(spec)
spec.loader.exec_module(relock_mod)

LOCK = """schema: '2.0'
stages:
  split@gts:
    deps:
    - path: lib/x.py
      hash: md5
      md5: old
      size: 10
  train_rankers@a:
    deps:
    - path: lib/x.py
      hash: md5
      md5: old
      size: 10
    - path: lib/y.py
      hash: md5
      md5: old
      size: 10
  train_rankers@b:
    deps:
    - path: lib/x.py
      hash: md5
      md5: older
      size: 9
  train_generators@c:
    deps:
    - path: lib/x.py
      hash: md5
      md5: old
      size: 10
  tokenizer@t:
    deps:
    - path: lib/x.py
      hash: md5
      md5: old
      size: 10
  evaluate_rankers@a:
    deps:
    - path: lib/x.py
      hash: md5
      md5: old
      size: 10
"""


def test_relock_updates_only_train_and_tokenizer_stages_recorded_with_the_old_version_of_that_file():
    text, stages = relock_mod.relock(LOCK, "lib/x.py", "old", "new", 12)
    assert stages == ["train_rankers@a", "train_generators@c", "tokenizer@t"]
    lock = yaml.safe_load(text)["stages"]
    deps = {st: {d["path"]: (d["md5"], d["size"]) for d in v["deps"]} for st, v in lock.items()}
    assert deps["train_rankers@a"] == {"lib/x.py": ("new", 12), "lib/y.py": ("old", 10)}  # another file: untouched
    assert deps["train_generators@c"]["lib/x.py"] == ("new", 12)
    assert deps["train_rankers@b"]["lib/x.py"] == ("older", 9)  # recorded with another version: untouched
    assert deps["tokenizer@t"]["lib/x.py"] == ("new", 12)  # output_neutral.py runs every tokenizer method too
    assert deps["split@gts"]["lib/x.py"] == ("old", 10)  # upstream stages are re-run, not re-recorded
    assert deps["evaluate_rankers@a"]["lib/x.py"] == ("old", 10)  # not checked by output_neutral.py
    assert relock_mod.relock(LOCK, "lib/z.py", "old", "new", 1) == (LOCK, [])
