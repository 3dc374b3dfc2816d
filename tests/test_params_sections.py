"""Each params.yaml section or table entry is declared by exactly the stages that read it, and by no other.

That is what makes `dvc exp run -S <section>.<key>=...` re-run only the stages that use the
value (and what lies below them). What a stage script reads is found in its source: constant
`load_section(args.params, "<section>", ...)` calls, and the table loaders of lib/runs.py
(`load_table_entry(prm, "<table>", name, "<section>", ...)`: the section plus its own entry
`<table>.${key}`; `load_entry(prm, "<table>", name, ...)` (lib/collab.py): that entry alone;
`load_run(prm, <family>, name, ...)`: its own `runs.<family>.${key}` plus the
backbone's section, `${item.backbone}` in dvc.yaml, or a generator family's own, lib.runs.FAMILY_SECTIONS;
`load_vector_run(prm, "<table>", name, ...)` (lib/vectors.py): `<table>.${key}` plus the backbone's section).
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml

from lib.runs import FAMILY_SECTIONS

ROOT = Path(__file__).resolve().parent.parent
DVC = {name: stage.get("do", stage)  # a foreach stage's body
       for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items()}
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
NOT_A_STAGE = {"study"}  # read by stages/targets.py for the Makefile, by no dvc stage


def _script(cmd: str) -> Path:
    return ROOT / re.search(r"python (stages/\S+\.py)", cmd).group(1)


def _const(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) else None


def params_read(stage: dict) -> set[str]:
    """The params entries the stage's script loads, spelled as dvc.yaml must declare them."""
    out = set()
    for node in ast.walk(ast.parse(_script(stage["cmd"]).read_text())):
        if not isinstance(node, ast.Call):
            continue
        fn = getattr(node.func, "id", None)
        if fn == "load_section":
            out.add(_const(node.args[1]))
        elif fn == "load_table_entry":
            out |= {_const(node.args[3]), f"{_const(node.args[1])}.${{key}}"}
        elif fn == "load_entry":  # lib/collab.py: a table whose entry is the whole config, no section
            out.add(f"{_const(node.args[1])}.${{key}}")
        elif fn == "load_vector_run":  # lib/vectors.py: a run table outside `runs`, entry + the backbone's section
            out |= {f"{_const(node.args[1])}.${{key}}", "${item.backbone}"}
        elif fn == "load_run":
            family = _const(node.args[1]) or re.search(r"--family (\S+)", stage["cmd"]).group(1)
            out |= {f"runs.{family}.${{key}}", FAMILY_SECTIONS.get(family, "${item.backbone}")}
    return out


@pytest.mark.parametrize("name", sorted(DVC))
def test_stage_declares_exactly_the_params_it_reads(name):
    stage = DVC[name]
    declared = {p if isinstance(p, str) else next(iter(p)) for p in stage.get("params", [])}
    assert declared == params_read(stage), f"stage {name!r}: declared {declared}, reads {params_read(stage)}"


def test_every_section_and_table_is_read_by_a_stage():
    read = {p.split(".")[0] for stage in DVC.values() for p in params_read(stage) if not p.startswith("${")}
    backbones = {e["backbone"] for runs in PARAMS["runs"].values() if runs for e in runs.values()}
    assert set(PARAMS) - NOT_A_STAGE == read | backbones, "a params section no stage reads, or one read but absent"


def test_every_run_family_has_a_training_and_an_evaluation_stage():
    for family in PARAMS["runs"]:
        train, evaluate = DVC[f"train_{family}"], DVC[f"evaluate_{family}"]
        assert f"runs.{family}.${{key}}" in train["params"]
        assert "results/${key}/run.json" in {next(iter(o)) if isinstance(o, dict) else o for o in train["outs"]}
        assert "results/${key}/run.json" in evaluate["deps"]
