"""benchmarks/protocol_check.py: `--set` overrides behave like `dvc exp run -S`."""
import importlib.util
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "protocol_check", Path(__file__).resolve().parent.parent / "benchmarks" / "protocol_check.py")
protocol_check = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(protocol_check)


def test_override_replaces_a_nested_param_with_its_yaml_type():
    params = {"sasrec": {"model": {"d_model": 64, "dropout": 0.3}, "top_k": 100}}
    protocol_check.apply_override(params, "sasrec.model.d_model=128")
    protocol_check.apply_override(params, "sasrec.model.dropout=0.5")
    assert params == {"sasrec": {"model": {"d_model": 128, "dropout": 0.5}, "top_k": 100}}


@pytest.mark.parametrize("assignment", ["sasrec.model.d_modle=128", "sasrec.top_k.x=1", "nosuch.key=1",
                                        "sasrec.model.d_model"])
def test_unknown_key_or_missing_value_is_an_error_naming_it(assignment):
    params = {"sasrec": {"model": {"d_model": 64}, "top_k": 100}}
    with pytest.raises(SystemExit, match="sasrec|nosuch"):
        protocol_check.apply_override(params, assignment)
    assert params == {"sasrec": {"model": {"d_model": 64}, "top_k": 100}}
