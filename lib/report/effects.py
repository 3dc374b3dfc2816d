"""The report's "Protocol effects" section: how much the protocol's own choices move the figures
(same-day tie order, final refit, cold pools, seeds, repeat targets)."""
from __future__ import annotations

import json

from lib.report.models import COLD, KEY, Models, pools_of
from lib.report.tables import rel_change, table

# split facts that must agree for two protocols to be "the same split" but for the one fact compared
SPLIT_FACTS = ("type", "t_val", "t_test", "retrain_on_validation", "tie_break")


def _pair_key(info: dict) -> str:
    """Models compared across protocols: same family, backbone, representation, overrides and item vectors
    (the tokenizer: `_twin_tokenizers`)."""
    return json.dumps([info["family"], info["backbone"], info["representation"], info.get("overrides") or {},
                       info.get("vectors")], sort_keys=True, default=str)


def _twin_tokenizers(before: str | None, after: str | None, before_protocol: str, after_protocol: str) -> bool:
    """The same tokenizer, or its twin fit on the other protocol's split, named (params `tokenizers`) with the
    protocol's suffix: rqvae on gts, rqvae_refit on gts_refit."""
    suffix = after_protocol[len(before_protocol):] if after_protocol.startswith(before_protocol) else None
    return before == after or (before is not None and suffix is not None and after == before + suffix)


def protocol_pairs(by_protocol: dict[str, list[str]], models: Models, splits: dict[str, dict], fact: str,
                   before, after) -> list[tuple[str, str, str, str]]:
    """(protocol with fact = before, model, protocol with fact = after, model) for the models of two protocols
    whose split metrics agree on every other SPLIT_FACTS key: the same model under one change of protocol."""
    value = {p: splits.get(p, {}).get(fact) for p in by_protocol}
    out = []
    for ap in sorted(p for p in by_protocol if value[p] == after):
        for bp in sorted(p for p in by_protocol if value[p] == before):
            if any(splits[bp].get(k) != splits[ap].get(k) for k in SPLIT_FACTS if k != fact):
                continue
            for m in sorted(by_protocol[bp]):
                cands = [r for r in sorted(by_protocol[ap]) if _pair_key(models.runs[r]) == _pair_key(models.runs[m])
                         and _twin_tokenizers(models.runs[m].get("tokenizer"), models.runs[r].get("tokenizer"), bp, ap)]
                if len(cands) == 1:
                    out.append((bp, m, ap, cands[0]))
    return out


def tie_pairs(by_protocol: dict[str, list[str]], models: Models,
              splits: dict[str, dict]) -> list[tuple[str, str, str, str]]:
    """(file-order protocol, model, random-tie protocol, model): the same split but for the order of
    same-day interactions."""
    return protocol_pairs(by_protocol, models, splits, "tie_break", "file_order", "random")


def _pair_rows(pairs: list[tuple[str, str, str, str]], models: Models, keys: tuple[str, ...]) -> list[list]:
    """One row per pair: models (seeds), protocols, then per key: before, after, relative change."""
    ev = models.evals
    return [[f"`{m}` ({models.n_seeds(m)}) / `{r}` ({models.n_seeds(r)})", f"`{bp}` / `{ap}`"]
            + [x for k in keys for x in (ev[m].get(k), ev[r].get(k), _change(ev[r].get(k), ev[m].get(k)))]
            for bp, m, ap, r in pairs]


def _change(new: float | None, old: float | None) -> str | None:
    return None if new is None or old is None else rel_change(new, old)


def _change_line(pairs: list[tuple[str, str, str, str]], models: Models, what: str) -> list[str]:
    ev = models.evals
    change = [(ev[r][KEY] - ev[m][KEY]) / ev[m][KEY] for _, m, _, r in pairs if ev[m].get(KEY)]
    return ["", f"{what}, test NDCG@10 changes by {min(change):+.0%} to {max(change):+.0%} over "
                f"{len(change)} model pair(s)."] if change else []


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
    head = ["models (seeds): file order / random", "protocols", "NDCG@10 file order", "NDCG@10 random", "change",
            "HR@10 file order", "HR@10 random", "change"]
    out += table(head, _pair_rows(pairs, models, (KEY, "test/hr@10")))
    return out + _change_line(pairs, models, "With random instead of file-order ties")


def refit_effects(by_protocol: dict[str, list[str]], models: Models, splits: dict[str, dict]) -> list[str]:
    """(b) The final refit: the checkpoint chosen on validation (fit on train) against the same model refit on
    everything at or before T_test for the epoch count chosen on validation (split.retrain_on_validation)."""
    pairs = protocol_pairs(by_protocol, models, splits, "retrain_on_validation", False, True)
    if not pairs:
        return ["No refit protocol holds a model of a protocol without refit and the same split: the effect of "
                "the final refit is not measured."]
    head = ["models (seeds): validation checkpoint / refit", "protocols", "NDCG@10 val. checkpoint", "NDCG@10 refit",
            "change", "HR@10 val. checkpoint", "HR@10 refit", "change", "cold HR@10 val. checkpoint",
            "cold HR@10 refit", "change", "refit epochs"]
    rows = [row + [models.train.get(r, {}).get("retrained_on_validation_epochs")]
            for row, (_, _, _, r) in zip(_pair_rows(pairs, models, (KEY, "test/hr@10", COLD)), pairs, strict=True)]
    return ["The refit model sees the validation period too, so its cold items (and the cold targets) are fewer: "
            "the cold columns compare different target sets (sizes under Cold pools).", "",
            *table(head, rows), *_change_line(pairs, models, "With the final refit")]


def pool_effects(by_protocol: dict[str, list[str]], models: Models) -> list[str]:
    """(c) Cold pool sizes and reachable test targets per protocol."""
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
    """(d) Spread of test NDCG@10 over seeds, for the models with several."""
    rows = [[f"`{p}`", f"`{r}`", models.n_seeds(r), models.evals[r][KEY], models.sd[r][KEY],
             f"{models.sd[r][KEY] / models.evals[r][KEY]:.1%}" if models.evals[r][KEY] else None]
            for p in sorted(by_protocol) for r in sorted(by_protocol[p]) if KEY in models.sd.get(r, {})]
    if not rows:
        return ["Every model has one seed: the spread over seeds is not measured."]
    return table(["protocol", "model", "seeds", "mean test NDCG@10", "sd", "sd / mean"], rows)


def repeat_effects(by_protocol: dict[str, list[str]], splits: dict[str, dict]) -> list[str]:
    """(e) Targets already in their input: unreachable for every model once seen items are removed."""
    rows = [[f"`{p}`", s.get("val_repeat_targets"), s.get("val_users"), s.get("test_repeat_targets"),
             s.get("test_users")]
            for p in sorted(by_protocol) if "test_repeat_targets" in (s := splits.get(p, {}))]
    if not rows:
        return ["No protocol's split metrics count repeat targets."]
    return table(["protocol", "val repeat targets", "val users", "test repeat targets", "test users"], rows)


def protocol_effects(by_protocol: dict[str, list[str]], models: Models, splits: dict[str, dict]) -> list[str]:
    """The report's "Protocol effects" section: ties, refit, cold pools, seeds, repeat targets."""
    return ["## Protocol effects", "",
            "How much the protocol's own choices move the figures.", "",
            "### Same-day ties", "", *tie_effects(by_protocol, models, splits), "",
            "### Final refit", "", *refit_effects(by_protocol, models, splits), "",
            "### Cold pools", "", *pool_effects(by_protocol, models), "",
            "### Seeds", "", *seed_effects(by_protocol, models), "",
            "### Repeat targets", "", *repeat_effects(by_protocol, splits), ""]
