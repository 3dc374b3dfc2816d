"""Shared plumbing of the stage scripts: argv, one params section, logging, seeding."""
from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import yaml

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # stages run as scripts: make `lib` importable
    sys.path.insert(0, str(ROOT))

from lib.config import ConfigError, from_dict  # noqa: E402

T = TypeVar("T")


def stage_args(description: str, paths: dict[str, str],
               extra: Callable[[argparse.ArgumentParser], None] | None = None,
               argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parse `--<name> PATH` for every entry of `paths` (name -> help), plus --params.

    `extra` may add non-path flags (e.g. a list of names); `argv` defaults to sys.argv (tests pass it).
    """
    p = argparse.ArgumentParser(description=description)
    for name, help_ in paths.items():
        p.add_argument(f"--{name}", type=Path, required=True, help=help_)
    p.add_argument("--params", type=Path, default=Path("params.yaml"), help="params file")
    if extra is not None:
        extra(p)
    return p.parse_args(argv)


def load_params(params_path: Path) -> dict:
    """The whole params file (stages then read their own section or table entry from it)."""
    if not params_path.is_file():
        sys.exit(f"error: params file not found: {params_path}")
    return yaml.safe_load(params_path.read_text()) or {}


def load_section(params_path: Path, section: str, cls: type[T]) -> T:
    """The `section` of the params file as a checked `cls`; exits with a clear message if bad."""
    params = load_params(params_path)
    try:
        return from_dict(cls, params.get(section), section)
    except ConfigError as e:
        sys.exit(f"error: bad params in {params_path}: {e}")


def checked(params_path: Path, build: Callable[[dict], T]) -> T:
    """`build(params)` (a table-entry loader of lib/runs.py); a ConfigError exits naming the key."""
    try:
        return build(load_params(params_path))
    except ConfigError as e:
        sys.exit(f"error: bad params in {params_path}: {e}")


def dvclive_logger(directory: Path):
    """The Lightning logger of the training stages: dvclive curves in `directory` (lib stays logger-agnostic)."""
    from dvclive.lightning import DVCLiveLogger
    return DVCLiveLogger(dir=str(directory), dvcyaml=False, save_dvc_exp=False, report=None)


def setup_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
