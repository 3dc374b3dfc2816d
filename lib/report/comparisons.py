"""The paired tests of a protocol and their Holm correction (lib/significance.py).

Per protocol, on per-user values averaged over seeds: every model vs the baseline on all test users,
vs the cold baseline on the cold-target users, and, for the models that place cold items, vs the
random cold-slot control (lib/evaluate.py) on the targets reachable in each cold pool. Holm covers
every test of a protocol or of the report (`report.family`).
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from lib.report.config import ReportConfig
from lib.report.models import Models, ordered, placing_cold, pools_of, reference_of, slots
from lib.significance import control_test, mark_significant, paired_test


def _test(base: np.ndarray, other: np.ndarray, against: str, cfg: ReportConfig) -> dict:
    return {"against": against, **paired_test(base, other, cfg.n_bootstrap, cfg.alpha, cfg.seed)}


def tests_vs_model(names: list[str], ref: str, models: Models, cfg: ReportConfig,
                   prefix: str = "test", mask_column: str | None = None) -> dict[str, dict[str, dict]]:
    """model -> {prefix/metric: paired test vs `ref`} on all test users, or on those where `mask_column` holds."""
    ref_vals = models.values[ref]
    mask = ref_vals[mask_column].to_numpy(bool) if mask_column else np.ones(len(ref_vals), bool)
    out: dict[str, dict[str, dict]] = {}
    for name in names:
        if name == ref or not mask.any():
            continue
        vals = models.values[name]
        if not np.array_equal(vals["user"].to_numpy(), ref_vals["user"].to_numpy()):
            raise ValueError(f"run {name!r}: its test users differ from the baseline {ref!r}'s (other split?)")
        out[name] = {f"{prefix}/{m}": _test(ref_vals[m].to_numpy()[mask], vals[m].to_numpy()[mask], ref, cfg)
                     for m in cfg.significance_metrics}
    return out


def control_metrics(pool: str, cfg: ReportConfig, values: pd.DataFrame) -> list[str]:
    """The significance metrics that have a per-user control column for `pool` (evaluate.control_k)."""
    return [m for m in cfg.significance_metrics if f"control_{pool}/{m}" in values.columns]


def tests_vs_control(names: list[str], models: Models, cfg: ReportConfig) -> dict[str, dict[str, dict]]:
    """model -> {test/cold_pool/<P>/hr@k: exact test vs the random cold-slot control} on the users whose target
    is reachable in pool P; only models that place items of P (NDCG's lift is shown, not tested)."""
    out: dict[str, dict[str, dict]] = {}
    for name in placing_cold(names, models, cfg):
        v = models.values[name]
        for pool in pools_of([name], models):
            if f"pool_{pool}" not in v.columns:
                continue
            mask = v[f"pool_{pool}"].to_numpy(bool)
            for m in control_metrics(pool, cfg, v):
                # hits only: the exact test needs 0/1 outcomes (and one seed: an average of hits is not one)
                if mask.any() and slots(models.evals[name], pool, m) > 0 and m.startswith("hr@") \
                        and len(models.members.get(name, [name])) == 1:
                    out.setdefault(name, {})[f"test/cold_pool/{pool}/{m}"] = {"against": "control", **control_test(
                        v[f"control_{pool}/{m}"].to_numpy()[mask], v[m].to_numpy()[mask], cfg.alpha)}
    return out


def protocol_tests(names: list[str], models: Models, cfg: ReportConfig) -> dict[str, dict[str, dict]]:
    """Every paired test of one protocol, not yet Holm-corrected: model -> {key: test}.

    All users vs `report.baseline` (test/<m>), cold targets vs `report.cold_baseline`
    (test/cold_target/<m>), reachable cold targets vs the control (test/cold_pool/<P>/<m>).
    """
    names = ordered(names, models)
    parts = []
    if (base := reference_of(names, models, cfg.baseline)) is not None:
        parts.append(tests_vs_model(names, base, models, cfg))
    if (cold := reference_of(names, models, cfg.cold_baseline)) is not None:
        parts.append(tests_vs_model(names, cold, models, cfg, "test/cold_target", "target_cold"))
    parts.append(tests_vs_control(names, models, cfg))
    out: dict[str, dict[str, dict]] = {}
    for name in names:
        for part in parts:
            out.setdefault(name, {}).update(part.get(name, {}))
    return {k: v for k, v in out.items() if v}


def correct(comparisons: dict[str, dict[str, dict[str, dict]]], cfg: ReportConfig) -> dict[str, int]:
    """Holm over each family (`cfg.family`: a protocol's tests, or all of the report's) in place;
    returns protocol -> the size of its family."""
    flat = {p: [t for tests in comp.values() for t in tests.values()] for p, comp in comparisons.items()}
    if cfg.family == "report":
        everything = [t for p in sorted(flat) for t in flat[p]]
        mark_significant(everything, cfg.alpha)
        return {p: len(everything) for p in flat}
    for tests in flat.values():
        mark_significant(tests, cfg.alpha)
    return {p: len(tests) for p, tests in flat.items()}
