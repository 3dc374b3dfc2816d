"""lib.runs: run entries, dotted overrides, table entries, run.json; and the repository's own params.yaml parses."""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml

from lib.config import ConfigError, apply_overrides, load_table_entry
from lib.data.split import SplitConfig
from lib.models.config import SeqRecConfig
from lib.rpg.config import RPGConfig
from lib.runs import (
    FAMILIES,
    REPRESENTATIONS,
    RunSpec,
    load_run,
    parse_run,
    run_info,
    sections_of,
)
from lib.sid.config import GPT2SidConfig
from lib.tokenizers.codes import TokenizerSpec

ROOT = Path(__file__).resolve().parent.parent


# --- parse_run -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("family", "extra", "representation"), [
    ("rankers", {}, "id"),
    ("content_rankers", {"vectors": "minilm"}, "content_init"),
    ("code_rankers", {"tokenizer": "rqvae"}, "sid_unigram"),
    ("generators", {"tokenizer": "rqvae"}, "sid"),
])
def test_parse_run_default_representation(family, extra, representation):
    spec = parse_run(family, "r", {"backbone": "gpt2", "protocol": "gts", **extra})
    assert spec == RunSpec(backbone="gpt2", protocol="gts", representation=representation,
                           tokenizer=extra.get("tokenizer"), vectors=extra.get("vectors"), set={})


def test_parse_run_keeps_an_allowed_representation_and_overrides():
    spec = parse_run("content_rankers", "c", {"backbone": "sasrec", "protocol": "loo", "vectors": "title",
                                              "representation": "content_plus_id", "set": {"train.seed": 1}})
    assert spec.vectors == "title" and run_info("c", "content_rankers", spec, seed=1)["vectors"] == "title"
    assert spec.representation == "content_plus_id" and spec.set == {"train.seed": 1} and spec.protocol == "loo"


@pytest.mark.parametrize(("family", "representation"), [
    ("rankers", "content"), ("content_rankers", "id"), ("code_rankers", "sid"), ("generators", "sid_unigram")])
def test_parse_run_refuses_a_representation_of_another_family(family, representation):
    entry = {"backbone": "sasrec", "protocol": "gts", "representation": representation}
    if family in ("code_rankers", "generators"):
        entry["tokenizer"] = "rqvae"
    if family == "content_rankers":
        entry["vectors"] = "minilm"
    with pytest.raises(ConfigError, match=rf"^runs\.{family}\.x\.representation: '{representation}' is not one of"):
        parse_run(family, "x", entry)


@pytest.mark.parametrize("family", ["code_rankers", "generators"])
def test_parse_run_requires_a_tokenizer_for_code_families(family):
    with pytest.raises(ConfigError, match=rf"^runs\.{family}\.x\.tokenizer: required for family {family}"):
        parse_run(family, "x", {"backbone": "gpt2", "protocol": "gts"})


@pytest.mark.parametrize("family", ["rankers", "content_rankers"])
def test_parse_run_refuses_a_tokenizer_for_rankers(family):
    with pytest.raises(ConfigError, match=rf"^runs\.{family}\.x\.tokenizer: not used by family {family}"):
        parse_run(family, "x", {"backbone": "sasrec", "protocol": "gts", "tokenizer": "rqvae", "vectors": "minilm"})


@pytest.mark.parametrize(("family", "extra"), [("rankers", {}), ("code_rankers", {"tokenizer": "t"}),
                                               ("generators", {"tokenizer": "t"})])
def test_parse_run_item_vectors_are_named_by_content_runs_only(family, extra):
    with pytest.raises(ConfigError, match=r"^runs\.content_rankers\.x\.vectors: required"):
        parse_run("content_rankers", "x", {"backbone": "sasrec", "protocol": "gts"})
    with pytest.raises(ConfigError, match=rf"^runs\.{family}\.x\.vectors: not used by family {family}"):
        parse_run(family, "x", {"backbone": "gpt2", "protocol": "gts", "vectors": "minilm", **extra})


def test_parse_run_errors_name_the_key():
    with pytest.raises(ConfigError, match=r"^runs\.rankers\.nope: no such run"):
        parse_run("rankers", "nope", None)
    with pytest.raises(ConfigError, match=r"^runs\.rankerz: unknown family"):
        parse_run("rankerz", "x", {"backbone": "sasrec", "protocol": "gts"})
    with pytest.raises(ConfigError, match=r"^runs\.rankers\.x: unknown key\(s\) \['protocl'\]"):
        parse_run("rankers", "x", {"backbone": "sasrec", "protocl": "gts"})
    with pytest.raises(ConfigError, match=r"^runs\.rankers\.x\.backbone: 'bert' is not one of"):
        parse_run("rankers", "x", {"backbone": "bert", "protocol": "gts"})
    with pytest.raises(ConfigError, match=r"^runs\.rankers\.x: .*protocol"):  # required
        parse_run("rankers", "x", {"backbone": "sasrec"})
    with pytest.raises(ConfigError, match=r"^runs\.rankers\.x\.set: expected a mapping"):
        parse_run("rankers", "x", {"backbone": "sasrec", "protocol": "gts", "set": ["train.seed", 1]})


# --- apply_overrides -----------------------------------------------------------------------------------------

SECTION = {"model": {"d_model": 64, "n_heads": 1}, "train": {"lr": 0.001, "seed": 42}, "top_k": 100}


def test_apply_overrides_dotted_keys_into_nested_sections():
    before = copy.deepcopy(SECTION)
    out = apply_overrides(SECTION, {"train.seed": 1, "model.d_model": 32, "top_k": 10}, "runs.rankers.r.set",
                          SeqRecConfig)
    assert out == {"model": {"d_model": 32, "n_heads": 1}, "train": {"lr": 0.001, "seed": 1}, "top_k": 10}
    assert SECTION == before  # the input is not mutated (nested dicts included)
    assert apply_overrides(SECTION, {}, "w", SeqRecConfig) == SECTION


def test_apply_overrides_adds_keys_the_section_leaves_at_their_default():
    out = apply_overrides({"model": {"d_model": 64}}, {"train.patience": 3, "model.dropout": 0.1}, "w", SeqRecConfig)
    assert out == {"model": {"d_model": 64, "dropout": 0.1}, "train": {"patience": 3}}
    assert apply_overrides(None, {"decode.beam_width": 20}, "w", GPT2SidConfig) == {"decode": {"beam_width": 20}}


def test_apply_overrides_merges_a_nested_mapping_like_its_dotted_form():
    # `dvc exp run -S runs.rankers.r.set.train.seed=1` writes {train: {seed: 1}}: the rest of `train` must stay
    nested = apply_overrides(SECTION, {"train": {"seed": 1}, "model": {}}, "w", SeqRecConfig)
    assert nested == apply_overrides(SECTION, {"train.seed": 1}, "w", SeqRecConfig)
    assert nested["train"] == {"lr": 0.001, "seed": 1} and nested["model"] == SECTION["model"]
    later = apply_overrides(SECTION, {"train": {"seed": 1}, "train.seed": 2}, "w", SeqRecConfig)
    assert later["train"]["seed"] == 2  # applied in the order written
    with pytest.raises(ConfigError, match=r"^runs\.rankers\.r\.set\.train\.sed: no such key"):
        apply_overrides(SECTION, {"train": {"sed": 1}}, "runs.rankers.r.set", SeqRecConfig)


@pytest.mark.parametrize("key", ["train.sed", "trian.seed", "top_k.x", "model.d_model.x", "seed"])
def test_apply_overrides_refuses_a_typo_naming_it(key):
    before = copy.deepcopy(SECTION)
    with pytest.raises(ConfigError, match="^" + re.escape(f"runs.rankers.r.set.{key}: no such key")):
        apply_overrides(SECTION, {key: 1}, "runs.rankers.r.set", SeqRecConfig)
    assert SECTION == before


# --- load_run / load_table_entry -----------------------------------------------------------------------------

def _params() -> dict:
    return {
        "split": {"type": "global_temporal", "quantile": 0.8},
        "protocols": {"gts": {}, "loo": {"type": "leave_one_out"}, "typo": {"quantil": 0.5}},
        "train": {"seed": 42, "threads": 1},
        "seqrec": {"train": {"patience": 8}, "top_k": 50},
        "sasrec": {"model": {"d_model": 64}},
        "gpt2": {"model": {"d_model": 48, "n_heads": 2}},
        "gpt2_sid": {"model": {"d_model": 128}, "train": {"seed": 7}},
        "rqvae": {"levels": 3, "codebook_size": 64},
        "tokenizers": {"rq": {"vectors": "v", "protocol": "gts"},
                       "km": {"vectors": "v", "protocol": "loo", "set": {"method": "kmeans_typo"}}},
        "runs": {
            "rankers": {"a": {"backbone": "sasrec", "protocol": "gts", "set": {"train.seed": 1, "model.dropout": 0.1}},
                        "bad_type": {"backbone": "sasrec", "protocol": "gts", "set": {"train.seed": "one"}}},
            "generators": {"g": {"backbone": "gpt2", "tokenizer": "rq", "protocol": "gts",
                                 "set": {"decode.beam_width": 20, "top_k": 20}}},
        },
    }


def test_load_run_merges_its_sections_then_applies_the_overrides():
    params = _params()
    before = copy.deepcopy(params)
    spec, cfg = load_run(params, "rankers", "a", SeqRecConfig)
    assert isinstance(cfg, SeqRecConfig) and spec.representation == "id"
    assert (cfg.train.seed, cfg.model.dropout, cfg.model.d_model) == (1, 0.1, 64)  # overridden; the backbone's
    assert (cfg.train.threads, cfg.train.patience, cfg.top_k) == (1, 8, 50)  # shared `train`; `seqrec`
    assert params == before


def test_load_run_nested_override_keeps_the_sections_other_values():
    params = _params()
    params["seqrec"]["train"] |= {"patience": 3, "lr": 0.01}  # not the dataclass defaults
    params["runs"]["rankers"]["n"] = {"backbone": "sasrec", "protocol": "gts", "set": {"train": {"seed": 5}}}
    _, cfg = load_run(params, "rankers", "n", SeqRecConfig)
    assert (cfg.train.seed, cfg.train.patience, cfg.train.lr, cfg.train.threads) == (5, 3, 0.01, 1)


def test_load_run_generator_reads_gpt2_sid_not_its_backbone():
    spec, cfg = load_run(_params(), "generators", "g", GPT2SidConfig)
    assert sections_of("generators", spec) == ["train", "gpt2_sid"]
    assert sections_of("rankers", spec) == ["train", "seqrec", "gpt2"]
    assert isinstance(cfg, GPT2SidConfig)
    # gpt2_sid's width, not gpt2's 48; its own seed over the shared one; the shared threads
    assert (cfg.model.d_model, cfg.train.seed, cfg.decode.beam_width, cfg.top_k) == (128, 7, 20, 20)
    assert cfg.train.threads == 1


def test_load_run_errors():
    with pytest.raises(ConfigError, match=r"runs\.rankers\.nope: no such run"):
        load_run(_params(), "rankers", "nope", SeqRecConfig)
    with pytest.raises(ConfigError, match=r"runs\.content_rankers\.a: no such run"):  # a family absent from params
        load_run(_params(), "content_rankers", "a", SeqRecConfig)
    # checked after overriding, named by the sections merged
    with pytest.raises(ConfigError, match=r"train\+seqrec\+sasrec\.train\.seed: expected an integer"):
        load_run(_params(), "rankers", "bad_type", SeqRecConfig)


def test_load_table_entry_protocols_override_split():
    params = _params()
    spec, gts = load_table_entry(params, "protocols", "gts", "split", SplitConfig)
    assert spec is None and gts == SplitConfig(type="global_temporal", quantile=0.8)
    _, loo = load_table_entry(params, "protocols", "loo", "split", SplitConfig)
    assert loo.type == "leave_one_out" and loo.quantile == 0.8  # the rest comes from `split`
    with pytest.raises(ConfigError, match=r"^protocols\.typo\.quantil: no such key"):
        load_table_entry(params, "protocols", "typo", "split", SplitConfig)
    with pytest.raises(ConfigError, match=r"^protocols\.nope: no such entry"):
        load_table_entry(params, "protocols", "nope", "split", SplitConfig)


@dataclass(frozen=True)
class _Tok:  # a stand-in for the `rqvae` section's RQVAEConfig (importing it pulls in torch)
    method: str = "rqvae"
    levels: int = 3
    codebook_size: int = 256
    hidden: tuple[int, ...] = field(default=(8,))


def test_load_table_entry_tokenizers_have_protocol_and_set():
    params = _params()
    spec, cfg = load_table_entry(params, "tokenizers", "rq", "rqvae", _Tok, TokenizerSpec)
    assert spec == TokenizerSpec(vectors="v", protocol="gts", set={}) and cfg == _Tok(levels=3, codebook_size=64)
    spec, cfg = load_table_entry(params, "tokenizers", "km", "rqvae", _Tok, TokenizerSpec)
    assert spec.protocol == "loo" and cfg == _Tok(method="kmeans_typo", codebook_size=64)
    params["tokenizers"]["bad"] = {"vectors": "v", "protocol": "gts", "set": {"level": 4}}
    with pytest.raises(ConfigError, match=r"^tokenizers\.bad\.set\.level: no such key"):
        load_table_entry(params, "tokenizers", "bad", "rqvae", _Tok, TokenizerSpec)
    params["tokenizers"]["noproto"] = {"vectors": "v", "set": {}}
    with pytest.raises(ConfigError, match=r"^tokenizers\.noproto: .*protocol"):
        load_table_entry(params, "tokenizers", "noproto", "rqvae", _Tok, TokenizerSpec)


def test_run_info_fields():
    spec = parse_run("generators", "g", {"backbone": "gpt2", "tokenizer": "rq", "protocol": "loo",
                                         "set": {"train.seed": 3}})
    info = run_info("g", "generators", spec, seed=3, n_levels=4)
    assert info == {"name": "g", "family": "generators", "backbone": "gpt2", "representation": "sid",
                    "tokenizer": "rq", "protocol": "loo", "n_levels": 4, "seed": 3, "overrides": {"train.seed": 3},
                    "protocol_version": 2, "rules": []}
    assert json.loads(json.dumps(info)) == info  # written as run.json
    info["overrides"]["train.seed"] = 9
    assert spec.set == {"train.seed": 3}  # a copy, not the spec's own dict
    plain = run_info("a", "rankers", parse_run("rankers", "a", {"backbone": "sasrec", "protocol": "gts"}), seed=42)
    assert plain["tokenizer"] is None and plain["n_levels"] is None and plain["overrides"] == {}


# --- the repository's params.yaml ----------------------------------------------------------------------------

PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text())
REAL_RUNS = [(family, name) for family, table in PARAMS["runs"].items() for name in table]


def test_real_params_families_are_known_and_expanded_by_dvc_yaml():
    assert set(PARAMS["runs"]) <= set(FAMILIES) and set(REPRESENTATIONS) == set(FAMILIES)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"]
    for family in PARAMS["runs"]:
        for prefix in ("train", "evaluate"):
            assert stages[f"{prefix}_{family}"]["foreach"] == f"${{runs.{family}}}"


@pytest.mark.parametrize(("family", "name"), REAL_RUNS, ids=[f"{f}.{n}" for f, n in REAL_RUNS])
def test_real_run_parses_and_loads(family, name):
    spec = parse_run(family, name, PARAMS["runs"][family][name])
    assert spec.protocol in PARAMS["protocols"]
    vectors = {name: e for kind in PARAMS["vectors"].values() for name, e in kind.items()}
    if spec.tokenizer is not None:
        assert spec.tokenizer in PARAMS["tokenizers"]
        assert PARAMS["tokenizers"][spec.tokenizer]["protocol"] == spec.protocol, "codes fit on another split"
    if spec.vectors is not None:
        assert spec.vectors in vectors and (vectors[spec.vectors] or {}).get("protocol", spec.protocol) == \
            spec.protocol, "vectors built from another split's training data"
    cls = {"generators": GPT2SidConfig, "parallel_generators": RPGConfig}.get(family, SeqRecConfig)
    _, cfg = load_run(PARAMS, family, name, cls)
    assert isinstance(cfg, cls)


def test_real_run_names_are_unique_across_families():
    names = [n for _, n in REAL_RUNS]
    assert len(names) == len(set(names))  # results/<run>, data/models/<run> are keyed by the name alone


def test_real_protocols_and_tokenizers_load():
    from lib.tokenizers.rqvae import RQVAEConfig
    for name in PARAMS["protocols"]:
        load_table_entry(PARAMS, "protocols", name, "split", SplitConfig)
    vectors = {name for kind in PARAMS["vectors"].values() for name in kind}
    for name in PARAMS["tokenizers"]:
        spec, _ = load_table_entry(PARAMS, "tokenizers", name, "rqvae", RQVAEConfig, TokenizerSpec)
        assert spec.protocol in PARAMS["protocols"] and spec.vectors in vectors


def test_real_study_core_and_report_baseline_exist():
    names = {n for _, n in REAL_RUNS}
    assert PARAMS["study"]["core"] and set(PARAMS["study"]["core"]) <= names
    base = PARAMS["report"]["baseline"]
    protocols_with_runs = {parse_run(f, n, PARAMS["runs"][f][n]).protocol for f, n in REAL_RUNS}
    for protocol in protocols_with_runs:  # every protocol's runs are compared with a baseline of their own
        assert any(s.backbone == base["backbone"] and s.representation == base["representation"]
                   and s.protocol == protocol
                   for s in (parse_run(f, n, PARAMS["runs"][f][n]) for f, n in REAL_RUNS)), protocol


def _seed_groups() -> dict[str, list[str]]:
    """model -> its runs in the table, grouped as the report groups seeds (lib/report/models.group_seeds) over the
    run.json each run's training stage writes (lib/runs.run_info)."""
    from lib.report.models import SEED_OVERRIDE, group_seeds
    infos = {}
    for family, name in REAL_RUNS:
        spec = parse_run(family, name, PARAMS["runs"][family][name])
        infos[name] = run_info(name, family, spec, seed=spec.set.get(SEED_OVERRIDE, PARAMS["train"]["seed"]))
    groups = group_seeds(infos)
    for model, members in groups.items():  # a second entry without a seed would be the same model twice
        plain = [r for r in members if SEED_OVERRIDE not in infos[r]["overrides"]]
        assert plain == [model], f"one entry without a seed override per model: {members}"
    return groups


def test_real_table_answers_the_questions_and_nothing_else():
    """Every run is a seed of a model named in a report question, or SASRec-ID / a generator under another protocol
    (question 6, one row per protocol), or the run whose item rows the collaborative vectors read."""
    groups = _seed_groups()
    report = PARAMS["report"]
    named = {m for q in report["questions"].values() for m in q["models"]}
    assert named <= set(groups), f"questions name models not in the table: {sorted(named - set(groups))}"
    other_protocol = {n for f, n in REAL_RUNS if parse_run(f, n, PARAMS["runs"][f][n]).protocol != report["protocol"]}
    collab_sources = {e["run"] for e in PARAMS["vectors"].get("collab", {}).values()}
    idle = set(groups) - named - other_protocol - collab_sources
    assert not idle, f"runs that answer no question: {sorted(idle)}"


def test_real_claimed_models_have_the_claim_seeds():
    """A model in a confirmatory claim, or a question's reference, has `min_claim_seeds` seeds in the table."""
    groups = _seed_groups()
    report = PARAMS["report"]
    claimed = {m for pair in report["confirmatory"] for m in pair}
    claimed |= {r for q in report["questions"].values() for r in q["references"]}
    short = {m: len(groups.get(m, [])) for m in claimed if len(groups.get(m, [])) < report["min_claim_seeds"]}
    assert not short, f"claimed models with fewer than {report['min_claim_seeds']} seeds: {short}"


def test_codes_of_another_protocol_are_refused():
    from lib.runs import check_codes_protocol
    check_codes_protocol({"protocol": "gts"}, "gts", "codes/x")
    check_codes_protocol({}, "loo", "codes/x")  # codes without a protocol (hand-made) are not checked
    with pytest.raises(ValueError, match="codes/x was fit under protocol 'loo', the run uses 'gts'"):
        check_codes_protocol({"protocol": "loo"}, "gts", "codes/x")
