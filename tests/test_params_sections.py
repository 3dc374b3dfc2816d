"""Each params.yaml section or table entry is declared by exactly the stages that read it, and by no other.

That is what makes `dvc exp run -S <section>.<key>=...` re-run only the stages that use the value (and what
lies below them). A stage reads params only through the loaders below, called with constant names — the test
refuses any other read (a raw `load_params`, `yaml.safe_load` or `params[...]` in a stage script), and checks
by recording every key each loader touches that a loader reads nothing beyond what it is declared to read:
  load_section(path, "<section>", cls)                     the section
  load_table_entry(prm, "<table>", name, "<section>", ...)  the section + its own entry `<table>.${key}`
  load_entry(prm, "<table>", name, cls)  (lib/collab.py)   its own entry alone
  load_run(prm, <family>, name, cls)                       `runs.<family>.${key}` + its sections (lib/runs.py
                                                           sections_of: `train`, then `gpt2_sid` / `rpg`, or
                                                           `seqrec` + `${item.backbone}` for the ranker families)
"""
from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from lib.config import load_table_entry
from lib.runs import FAMILY_SECTIONS, RANKER_SECTION, SHARED_TRAIN, load_run, parse_run, sections_of
from lib.tokenizers.codes import TokenizerSpec

ROOT = Path(__file__).resolve().parent.parent
DVC = {name: stage.get("do", stage)  # a foreach stage's body
       for name, stage in yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"].items()}
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
NOT_A_STAGE = {"study", "compare"}  # read by tools/targets.py for the Makefile | expanded by dvc.yaml's
# foreach into the compare stages' paths; by no stage script
LOADERS = {"load_section", "load_table_entry", "load_entry", "load_run"}
YAML_READS = {"safe_load", "load", "full_load", "unsafe_load"}  # yaml.<these>: a params file read around the loaders


def _script(cmd: str) -> Path:
    return ROOT / re.search(r"python (stages/\S+\.py)", cmd).group(1)


def _const(node) -> str | None:
    return node.value if isinstance(node, ast.Constant) else None


def _fn(node: ast.Call) -> str | None:
    return getattr(node.func, "id", None) or getattr(node.func, "attr", None)


def params_read(stage: dict) -> set[str]:
    """The params entries the stage's script loads, spelled as dvc.yaml must declare them."""
    out = set()
    for node in ast.walk(ast.parse(_script(stage["cmd"]).read_text())):
        if not isinstance(node, ast.Call):
            continue
        fn = _fn(node)
        if fn == "load_section":
            out.add(_const(node.args[1]))
        elif fn == "load_table_entry":
            out |= {_const(node.args[3]), f"{_const(node.args[1])}.${{key}}"}
        elif fn == "load_entry":
            out.add(f"{_const(node.args[1])}.${{key}}")
        elif fn == "load_run":
            family = _const(node.args[1]) or re.search(r"--family (\S+)", stage["cmd"]).group(1)
            out |= {f"runs.{family}.${{key}}", SHARED_TRAIN,
                    *FAMILY_SECTIONS.get(family, (RANKER_SECTION, "${item.backbone}"))}
    return out


@pytest.mark.parametrize("name", sorted(DVC))
def test_stage_declares_exactly_the_params_it_reads(name):
    stage = DVC[name]
    declared = {p if isinstance(p, str) else next(iter(p)) for p in stage.get("params", [])}
    assert declared == params_read(stage), f"stage {name!r}: declared {declared}, reads {params_read(stage)}"


@pytest.mark.parametrize("script", sorted(p.name for p in (ROOT / "stages").glob("*.py") if p.name != "_common.py"))
def test_stage_scripts_read_params_through_the_loaders_only(script):
    """No raw read beside the loaders, and every loader call names its section/table by a constant."""
    for node in ast.walk(ast.parse((ROOT / "stages" / script).read_text())):
        if isinstance(node, ast.Subscript) and getattr(node.value, "id", None) in ("params", "prm"):
            pytest.fail(f"stages/{script}:{node.lineno}: reads params[...] directly")
        if not isinstance(node, ast.Call):
            continue
        fn = _fn(node)
        raw = fn == "load_params" or (fn in YAML_READS and getattr(node.func, "value", None) is not None
                                      and getattr(node.func.value, "id", None) == "yaml")
        assert not raw, f"stages/{script}:{node.lineno}: {fn}() reads params around the loaders"
        if fn == "get" and getattr(node.func.value, "id", None) in ("params", "prm"):
            pytest.fail(f"stages/{script}:{node.lineno}: reads params.get(...) directly")
        if fn in LOADERS:
            named = node.args[1] if fn != "load_run" else node.args[2]
            assert fn == "load_run" or _const(named) is not None, f"stages/{script}:{node.lineno}: {fn} by a variable"


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


# --- what each loader touches, recorded ------------------------------------------------------------------------

class Recorder(dict):
    """A params mapping that records the dotted path of every key read from it (nested mappings too)."""

    def __init__(self, data: dict, log: set, prefix: str = ""):
        super().__init__(data)
        self.log, self.prefix = log, prefix

    def _wrap(self, key, value):
        path = f"{self.prefix}{key}"
        self.log.add(path)
        return Recorder(value, self.log, f"{path}.") if isinstance(value, dict) else value

    def __getitem__(self, key):
        return self._wrap(key, super().__getitem__(key))

    def get(self, key, default=None):
        return self._wrap(key, super().get(key, default)) if key in self else default

    def items(self):
        return [(k, self[k]) for k in self.keys()]

    def values(self):
        return [self[k] for k in self.keys()]


def _touched(load, *args) -> set[str]:
    log: set[str] = set()
    load(Recorder(PARAMS, log), *args)
    return log


def _within(touched: set[str], declared: set[str]) -> list[str]:
    """Touched paths outside the declared entries (a path on the way to one, `runs`, is fine)."""
    return sorted(p for p in touched if not any(p == d or p.startswith(d + ".") or d.startswith(p + ".")
                                                for d in declared))


@pytest.mark.parametrize("family", sorted(PARAMS["runs"]))
def test_load_run_reads_its_entry_and_its_section_only(family):
    from lib.models.config import SeqRecConfig
    from lib.rpg.config import RPGConfig
    from lib.sid.config import GPT2SidConfig
    cls = {"generators": GPT2SidConfig, "parallel_generators": RPGConfig}.get(family, SeqRecConfig)
    for name, entry in PARAMS["runs"][family].items():
        sections = sections_of(family, parse_run(family, name, entry))
        extra = _within(_touched(load_run, family, name, cls), {f"runs.{family}.{name}", *sections})
        assert not extra, f"runs.{family}.{name}: the loader also read {extra}"


def test_table_loaders_read_their_entry_and_section_only():
    from lib.collab import CollabVectorsConfig, load_entry
    from lib.data.split import SplitConfig
    from lib.embed import EmbedConfig
    from lib.tokenizers.rqvae import RQVAEConfig
    from lib.vectors import EmbedVectorsSpec
    cases = [(load_table_entry, ("protocols", p, "split", SplitConfig), {f"protocols.{p}", "split"})
             for p in PARAMS["protocols"]]
    cases += [(load_table_entry, ("tokenizers", t, "rqvae", RQVAEConfig, TokenizerSpec), {f"tokenizers.{t}", "rqvae"})
              for t in PARAMS["tokenizers"]]
    cases += [(load_table_entry, ("vectors.embed", v, "embed", EmbedConfig, EmbedVectorsSpec),
               {f"vectors.embed.{v}", "embed"}) for v in PARAMS["vectors"]["embed"]]
    cases += [(load_entry, ("vectors.collab", v, CollabVectorsConfig), {f"vectors.collab.{v}"})
              for v in PARAMS["vectors"]["collab"]]
    for load, args, declared in cases:
        extra = _within(_touched(load, *args), declared)
        assert not extra, f"{args[:2]}: the loader also read {extra}"


@dataclass(frozen=True)
class _Cfg:
    a: int = 1
    sub: dict = field(default_factory=dict)


def test_the_recorder_sees_a_read_beside_the_entry():
    """The check can fail: a loader that peeks at another table is caught."""
    def nosy(params, name):
        params.get("tokenizers")  # e.g. a name-clash check over another table
        return load_table_entry(params, "protocols", name, "split", _Cfg)
    params = {"protocols": {"p": {"a": 2}}, "split": {}, "tokenizers": {"t": {}}}
    log: set[str] = set()
    nosy(Recorder(params, log), "p")
    assert _within(log, {"protocols.p", "split"}) == ["tokenizers"]
