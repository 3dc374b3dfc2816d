"""The report's "Protocol effects" section: how much the protocol's own choices move the figures
(same-day tie order, cold pools, seeds, repeat targets)."""
from __future__ import annotations

import json

from lib.report.models import KEY, Models, pools_of
from lib.report.tables import rel_change, table

# split facts that must agree for two protocols to be "the same split, other tie order"
SPLIT_BOUNDARIES = ("type", "t_val", "t_test", "retrain_on_validation")


def _pair_key(info: dict) -> str:
    """Models compared across protocols: same family, backbone, representation, overrides and item vectors
    (tokenizer may differ)."""
    return json.dumps([info["family"], info["backbone"], info["representation"], info.get("overrides") or {},
                       info.get("vectors")], sort_keys=True, default=str)


def tie_pairs(by_protocol: dict[str, list[str]], models: Models,
              splits: dict[str, dict]) -> list[tuple[str, str, str, str]]:
    """(file-order protocol, model, random-tie protocol, model) for the models of two protocols that are the
    same split (SPLIT_BOUNDARIES agree) but for the order of same-day interactions."""
    tie = {p: splits.get(p, {}).get("tie_break") for p in by_protocol}
    out = []
    for rp in sorted(p for p in by_protocol if tie[p] == "random"):
        for fp in sorted(p for p in by_protocol if tie[p] == "file_order"):
            if any(splits[fp].get(k) != splits[rp].get(k) for k in SPLIT_BOUNDARIES):
                continue
            for m in sorted(by_protocol[fp]):
                cands = [r for r in sorted(by_protocol[rp]) if _pair_key(models.runs[r]) == _pair_key(models.runs[m])]
                if len(cands) > 1:  # several tokenizers of one representation: the same name decides
                    cands = [r for r in cands if models.runs[r].get("tokenizer") == models.runs[m].get("tokenizer")]
                if len(cands) == 1:
                    out.append((fp, m, rp, cands[0]))
    return out


def tie_effects(by_protocol: dict[str, list[str]], models: Models, splits: dict[str, dict]) -> list[str]:
    """(a) Same-day target shares per protocol, and models' test metrics under file-order vs random ties."""
    facts = [[f"`{p}`", s.get("tie_break"), s.get("val_same_day_target_fraction"),
              s.get("test_same_day_target_fraction")]
             for p in sorted(by_protocol) if "tie_break" in (s := splits.get(p, {}))]
    if not facts:
        return ["No protocol's split metrics record the tie order."]
    out = ["A same-day target shares its timestamp with the latest item of its input: which of the two is the "
           "target, and the input's order, come from the tie order alone (file order = the raw file's).", "",
           *table(["protocol", "tie_break", "val same-day targets", "test same-day targets"], facts), ""]
    pairs = tie_pairs(by_protocol, models, splits)
    if not pairs:
        return out + ["No protocol with random tie order holds a model of a file-order protocol with the same "
                      "split: the effect of the tie order on the figures is not measured."]
    ev = models.evals
    rows = [[f"`{m}` ({models.n_seeds(m)}) / `{r}` ({models.n_seeds(r)})", f"`{fp}` / `{rp}`"]
            + [x for k in (KEY, "test/hr@10") for x in (ev[m].get(k), ev[r].get(k), rel_change(ev[r][k], ev[m][k]))]
            for fp, m, rp, r in pairs]
    change = [(ev[r][KEY] - ev[m][KEY]) / ev[m][KEY] for _, m, _, r in pairs if ev[m][KEY]]
    out += table(["models (seeds): file order / random", "protocols", "NDCG@10 file order", "NDCG@10 random",
                  "change", "HR@10 file order", "HR@10 random", "change"], rows)
    if change:
        out += ["", f"With random instead of file-order ties, test NDCG@10 changes by {min(change):+.0%} to "
                    f"{max(change):+.0%} over {len(change)} model pair(s)."]
    return out


def pool_effects(by_protocol: dict[str, list[str]], models: Models) -> list[str]:
    """(b) Cold pool sizes and reachable test targets per protocol."""
    rows = []
    for p in sorted(by_protocol):
        names = sorted(by_protocol[p])
        for pool in pools_of(names, models):
            ev = next(models.evals[r] for r in names if f"test/cold_pool/{pool}/items" in models.evals[r])
            n, users = ev.get(f"test/cold_pool/{pool}/targets"), ev.get("test/users")
            rows.append([f"`{p}`", f"`{pool}`", ev[f"test/cold_pool/{pool}/items"], n,
                         f"{n / users:.1%}" if n is not None and users else None])
    if not rows:
        return ["No evaluation reports cold pools."]
    return table(["protocol", "pool", "items", "reachable test targets", "share of test targets"], rows)


def seed_effects(by_protocol: dict[str, list[str]], models: Models) -> list[str]:
    """(c) Spread of test NDCG@10 over seeds, for the models with several."""
    rows = [[f"`{p}`", f"`{r}`", models.n_seeds(r), models.evals[r][KEY], models.sd[r][KEY],
             f"{models.sd[r][KEY] / models.evals[r][KEY]:.1%}" if models.evals[r][KEY] else None]
            for p in sorted(by_protocol) for r in sorted(by_protocol[p]) if KEY in models.sd.get(r, {})]
    if not rows:
        return ["Every model has one seed: the spread over seeds is not measured."]
    return table(["protocol", "model", "seeds", "mean test NDCG@10", "sd", "sd / mean"], rows)


def repeat_effects(by_protocol: dict[str, list[str]], splits: dict[str, dict]) -> list[str]:
    """(d) Targets already in their input: unreachable for every model once seen items are removed."""
    rows = [[f"`{p}`", s.get("val_repeat_targets"), s.get("val_users"), s.get("test_repeat_targets"),
             s.get("test_users")]
            for p in sorted(by_protocol) if "test_repeat_targets" in (s := splits.get(p, {}))]
    if not rows:
        return ["No protocol's split metrics count repeat targets."]
    return table(["protocol", "val repeat targets", "val users", "test repeat targets", "test users"], rows)


def protocol_effects(by_protocol: dict[str, list[str]], models: Models, splits: dict[str, dict]) -> list[str]:
    """The report's "Protocol effects" section: ties, cold pools, seeds, repeat targets."""
    return ["## Protocol effects", "",
            "How much the protocol's own choices move the figures.", "",
            "### Same-day ties", "", *tie_effects(by_protocol, models, splits), "",
            "### Cold pools", "", *pool_effects(by_protocol, models), "",
            "### Seeds", "", *seed_effects(by_protocol, models), "",
            "### Repeat targets", "", *repeat_effects(by_protocol, splits), ""]
