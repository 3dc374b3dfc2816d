"""Each params.yaml section is declared by exactly the stages that read it, and by no other.

That is what makes `dvc exp run -S <section>.<key>=...` re-run only the stages that use the
value (and what lies below them). Sections are found in the stage scripts' `load_section` calls;
a section chosen on the command line (train_seqrec's `--backbone`) is read from the stage's cmd.
A section belongs to one stage script; several dvc stages may run that script (the tokenizer
ablations run stages/rqvae.py with overrides of the `rqvae` section).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DVC = {name: stage.get("do", stage)  # a foreach stage's body
       for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items()}
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
MATRIX_ONLY = {"variants"}  # read by dvc.yaml's matrix expansion, not by a script


def _script(cmd: str) -> Path:
    return ROOT / re.search(r"python (stages/\S+\.py)", cmd).group(1)


def sections_read(stage: dict) -> set[str]:
    """Params sections the stage's script loads, resolving `args.<flag>` from the cmd."""
    out = set()
    for node in ast.walk(ast.parse(_script(stage["cmd"]).read_text())):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "load_section":
            arg = node.args[1]
            if isinstance(arg, ast.Constant):
                out.add(arg.value)
            else:  # args.backbone -> the value of --backbone in the command
                flag = arg.attr.replace("_", "-")
                out.add(re.search(rf"--{flag} (\S+)", stage["cmd"]).group(1))
    return out


@pytest.mark.parametrize("name", sorted(DVC))
def test_stage_declares_exactly_the_sections_it_reads(name):
    stage = DVC[name]
    declared = {p if isinstance(p, str) else next(iter(p)) for p in stage.get("params", [])}
    assert declared == sections_read(stage), f"stage {name!r}: declared {declared}, reads {sections_read(stage)}"


def test_every_section_belongs_to_one_stage_script():
    owners: dict[str, set[Path]] = {}
    for stage in DVC.values():
        for sec in sections_read(stage):
            owners.setdefault(sec, set()).add(_script(stage["cmd"]))
    assert set(PARAMS) - MATRIX_ONLY == set(owners), "a params section no stage reads, or a stage reading no section"
    assert all(len(v) == 1 for v in owners.values()), owners
