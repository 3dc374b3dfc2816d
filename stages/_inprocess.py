"""Run another stage script's `main()` in this process, on a params file of the wrapper's own.

How a new table reuses a recorded stage's work without changing its script (a dep of every dvc.lock
entry below that stage): the wrapper stage (vector_tokenizer, text_vectors, train_vector_ranker) reads
its own entry, writes a temporary params file holding only the sections the script reads, and calls
the script's main() as if it had been started with those flags. Its outputs are then exactly what the
script writes for such params.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml


def wrapper_args(description: str, names: dict[str, str], paths: dict[str, str],
                 argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    """(the wrapper's own flags, the rest of argv): required `--<name> TEXT` per entry of `names` and
    `--<name> PATH` per entry of `paths` (name -> help), plus --params; the rest goes to the wrapped
    script as it is. argv defaults to sys.argv (tests pass it)."""
    p = argparse.ArgumentParser(description=description)
    for flag, help_ in names.items():
        p.add_argument(f"--{flag}", required=True, help=help_)
    for flag, help_ in paths.items():
        p.add_argument(f"--{flag}", type=Path, required=True, help=help_)
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file (the wrapper's own entry)")
    return p.parse_known_args(list(sys.argv[1:] if argv is None else argv))


def run_main(main: Callable[[], None], argv: Sequence[str], params: dict) -> None:
    """`main()` of a stage script with sys.argv = [its file, *argv, --params <a file holding `params`>].

    The file lives in a temporary directory for this call only; sys.argv is restored afterwards, also
    when main raises (SystemExit included). `params` must be plain YAML data (the entries as written in
    params.yaml, not checked dataclasses). argv must not hold --params: the file given here is the one read.
    """
    if any(a == "--params" or a.startswith("--params=") for a in argv):
        raise ValueError("run_main: argv holds --params; the params file is the one run_main writes")
    with tempfile.TemporaryDirectory() as tmp:
        own = Path(tmp) / "params.yaml"
        own.write_text(yaml.safe_dump(params, sort_keys=False))
        saved = sys.argv
        sys.argv = [main.__code__.co_filename, *argv, "--params", str(own)]
        try:
            main()
        finally:
            sys.argv = saved
