"""stages/_inprocess.py: a stage script's main() called in-process on a params file of the wrapper's own."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(autouse=True)
def stages_path(monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "stages"))  # the wrappers import it as a sibling script does


def run_main(*args):
    from _inprocess import run_main as run
    return run(*args)


def test_wrapper_args_take_their_own_flags_and_pass_the_rest_on():
    from _inprocess import wrapper_args
    args, rest = wrapper_args("doc", {"name": "n"}, {"embed-meta": "m"},
                              ["--split-dir", "s", "--name", "t", "--embed-meta", "m.json", "--out-dir", "o"])
    assert args.name == "t" and args.embed_meta == Path("m.json") and args.params == Path("params.yaml")
    assert rest == ["--split-dir", "s", "--out-dir", "o"]
    with pytest.raises(SystemExit):
        wrapper_args("doc", {"name": "n"}, {}, ["--out-dir", "o"])  # --name is required


def _script_main(seen: list):
    """A stand-in stage main(): parses sys.argv like a stage script and records what it read."""
    def main() -> None:
        p = argparse.ArgumentParser()
        p.add_argument("--out", required=True)
        p.add_argument("--params", type=Path, default=Path("params.yaml"))
        args = p.parse_args()
        seen.append((list(sys.argv), args.out, yaml.safe_load(args.params.read_text()), args.params))
    return main


def test_main_reads_the_given_flags_and_a_params_file_holding_exactly_the_given_params():
    seen, before = [], list(sys.argv)
    params = {"rqvae": {"levels": 3, "hidden": [4, 2]}, "tokenizers": {"t": {"protocol": "gts", "set": {}}}}
    run_main(_script_main(seen), ["--out", "x"], params)
    argv, out, read, path = seen[0]
    assert out == "x" and read == params
    assert argv[0] == __file__ and argv[1:3] == ["--out", "x"] and argv[3] == "--params"
    assert sys.argv == before  # restored
    assert not path.exists()  # the temporary file lives for the call only


def test_argv_is_restored_when_main_fails_and_params_flags_are_refused():
    before = list(sys.argv)

    def failing() -> None:
        raise SystemExit("error: bad input")

    with pytest.raises(SystemExit, match="bad input"):
        run_main(failing, [], {})
    assert sys.argv == before
    for argv in (["--params", "p.yaml"], ["--params=p.yaml"]):
        with pytest.raises(ValueError, match="holds --params"):
            run_main(_script_main([]), argv, {})


def test_a_real_stage_script_runs_on_the_given_params(tmp_path, monkeypatch):
    """stages/embed.py's main() (a script with no argv parameter) reads the section given here, not the
    repository's params.yaml: an unknown key in it is reported with the section's name."""
    import embed  # stages/embed.py

    monkeypatch.chdir(tmp_path)  # no params.yaml here: the stage must read run_main's file
    with pytest.raises(SystemExit, match="embed: unknown key"):
        run_main(embed.main, ["--items", "i.parquet", "--out-dir", "o", "--metrics", "m.json"],
                 {"embed": {"modle": "x"}})
