"""Every tuned default has one value: a config dataclass's defaults equal params.yaml's section.

params.yaml is where a value is chosen (and what DVC tracks); the dataclasses' defaults are what a library
caller gets without params. They must not disagree (they did: 2 vs 3 SASRec blocks, RPG lr 0.01 vs 0.003), so
each section is loaded as the stages load it and compared with the dataclass built from its defaults alone.
The one declared exception: the GPT-2 backbone's model differs from the SASRec reference the dataclass holds.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml

from lib.config import from_dict
from lib.runs import RunSpec, run_section
from lib.train_config import TrainBase

ROOT = Path(__file__).resolve().parent.parent
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())


def _sections():
    from lib.data.parse import ParseConfig
    from lib.data.preprocess import PreprocessConfig
    from lib.data.split import SplitConfig
    from lib.embed import EmbedConfig
    from lib.evaluate import EvaluateConfig
    from lib.models.config import SeqRecConfig
    from lib.rpg.config import RPGConfig
    from lib.sid.config import GPT2SidConfig
    from lib.sid.decoding_bench import DecodingConfig
    from lib.tokenizers.rqvae import RQVAEConfig
    ranker = RunSpec(backbone="sasrec", protocol="gts")
    return {
        "train": (TrainBase, PARAMS["train"]),
        "parse": (ParseConfig, PARAMS["parse"]), "preprocess": (PreprocessConfig, PARAMS["preprocess"]),
        "split": (SplitConfig, PARAMS["split"]), "embed": (EmbedConfig, PARAMS["embed"]),
        "rqvae": (RQVAEConfig, PARAMS["rqvae"]), "evaluate": (EvaluateConfig, PARAMS["evaluate"]),
        "decoding": (DecodingConfig, PARAMS["decoding"]),
        "train+seqrec+sasrec": (SeqRecConfig, run_section(PARAMS, "rankers", ranker)),
        "train+gpt2_sid": (GPT2SidConfig, run_section(PARAMS, "generators", ranker)),
        "train+rpg": (RPGConfig, run_section(PARAMS, "parallel_generators", ranker)),
    }


def _differences(a, b, path: str = "") -> list[str]:
    out = []
    for f in dataclasses.fields(a):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if dataclasses.is_dataclass(x):
            out += _differences(x, y, f"{path}{f.name}.")
        elif x != y:
            out.append(f"{path}{f.name}: params {x!r}, dataclass default {y!r}")
    return out


@pytest.mark.parametrize("name", sorted(_sections()))
def test_params_section_equals_the_dataclass_defaults(name):
    cls, section = _sections()[name]
    assert not _differences(from_dict(cls, section, name), cls()), _differences(from_dict(cls, section, name), cls())


def test_gpt2_backbone_differs_from_the_sasrec_reference_in_its_declared_keys_only():
    from lib.models.config import SeqRecConfig
    gpt2 = from_dict(SeqRecConfig, run_section(PARAMS, "rankers", RunSpec(backbone="gpt2", protocol="gts")), "gpt2")
    assert sorted(d.split(":")[0] for d in _differences(gpt2, SeqRecConfig())) == \
        ["model.dropout", "model.n_heads", "model.n_layers"]


def test_the_check_sees_a_disagreement():
    cls, section = _sections()["train"]
    changed = from_dict(cls, {**section, "seed": 7}, "train")
    assert _differences(changed, cls()) == ["seed: params 7, dataclass default 42"]
