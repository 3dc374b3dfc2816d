"""End-to-end training on a tiny synthetic split: early stopping, checkpoint with config, determinism."""
import dataclasses

import numpy as np
import pandas as pd
import pytest
import torch

from lib import metrics
from lib.models.config import ModelConfig, SeqRecConfig, TrainConfig
from lib.models.recommend import recommend
from lib.models.training import SeqRecModule, fit
from lib.trainer import seed_and_pin

N_ITEMS = 20


def tiny_split(seed=0):
    """Users walk the item cycle 1..N from random starts: the next item is always current + 1."""
    rng = np.random.default_rng(seed)
    rows, evals = [], []
    for u in range(60):
        start = int(rng.integers(1, N_ITEMS + 1))
        seq = [(start + j - 1) % N_ITEMS + 1 for j in range(7)]
        rows += [(u, it, j) for j, it in enumerate(seq[:5])]
        evals.append((u, seq[:5], seq[5]))
    train = pd.DataFrame(rows, columns=["user", "item", "timestamp"])
    val = pd.DataFrame(evals, columns=["user", "history", "target"])
    return train, val


def cfg(**train_overrides):
    tc = dict(max_epochs=30, patience=30, batch_size=16, lr=1e-2, seed=3, device="cpu")
    tc.update(train_overrides)
    return SeqRecConfig(model=ModelConfig(d_model=16, n_layers=1, n_heads=1, dropout=0.0, max_len=8),
                        train=TrainConfig(**tc), top_k=5)


@pytest.mark.parametrize("backbone", ["sasrec", "gpt2"])
def test_fit_learns_selects_best_and_checkpoint_carries_config(tmp_path, backbone):
    train, val = tiny_split()
    best, facts = fit(backbone, "id", cfg(), train, val, N_ITEMS, None, str(tmp_path / "ckpt"), progress=False)
    assert facts["best_val_ndcg@10"] > 0.9  # the successor rule is learnable
    assert 1 <= facts["best_epoch"] <= facts["epochs"] == 30
    recs = recommend(best.model, val, 5, progress=False)
    top1 = metrics.top_k(list(recs["items"]), 1, seen=list(val["history"]))[:, 0]  # as the evaluator filters
    assert np.mean(top1 == val["target"].to_numpy()) > 0.9
    # the checkpoint alone (hyperparameters inside) rebuilds the same model
    re = SeqRecModule.load_from_checkpoint(str(tmp_path / "ckpt" / "best.ckpt"), map_location="cpu")
    assert re.hparams.backbone == backbone and re.hparams.model_cfg["d_model"] == 16
    for a, b in zip(re.state_dict().values(), best.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_same_seed_same_result(tmp_path):
    train, val = tiny_split()
    c = cfg(max_epochs=3, patience=3)
    seed_and_pin(c.train.seed, c.train.threads)  # what the training road does before each fit (lib/road.py)
    _, a = fit("sasrec", "id", c, train, val, N_ITEMS, None, str(tmp_path / "a"), progress=False)
    seed_and_pin(c.train.seed, c.train.threads)
    _, b = fit("sasrec", "id", c, train, val, N_ITEMS, None, str(tmp_path / "b"), progress=False)
    assert a["best_val_ndcg@10"] == b["best_val_ndcg@10"]


def test_early_stopping_stops(tmp_path):
    train, val = tiny_split()
    _, facts = fit("sasrec", "id", cfg(lr=1e-9, max_epochs=50, patience=2), train, val, N_ITEMS, None,
                   str(tmp_path / "c"), progress=False)
    assert facts["epochs"] < 50


def test_refit_trains_the_given_number_of_epochs(tmp_path):
    from lib.models.training import refit

    train, _ = tiny_split()
    module = refit("sasrec", "id", cfg(), train, N_ITEMS, None, epochs=2, progress=False)
    assert module.trainer.current_epoch == 2
    assert module.hparams.representation == "id"


def test_semantic_id_model_checkpoint_carries_codes_and_cold_mask(tmp_path):
    from lib.models.item_repr import ItemFeatures

    train, val = tiny_split()
    codes = np.stack([np.arange(N_ITEMS + 1) % 4, np.arange(N_ITEMS + 1) // 4], axis=1)
    codes[0] = -1
    warm = np.zeros(N_ITEMS + 1, bool)
    warm[train["item"].unique()] = True
    warm[N_ITEMS] = False  # one cold item
    features = ItemFeatures(codes=codes, warm=warm)
    best, _ = fit("sasrec", "sid_plus_id", cfg(max_epochs=2), train, val, N_ITEMS, features,
                  str(tmp_path / "ckpt"), progress=False)
    state = torch.load(tmp_path / "ckpt" / "best.ckpt", weights_only=False)["state_dict"]
    assert torch.equal(state["model.items.code_ids"][1:], torch.as_tensor(codes[1:]))  # compact ids = codes here
    assert state["model.items.id_mask"][N_ITEMS].item() == 0 and state["model.items.id_mask"][1].item() == 1
    re = SeqRecModule.load_from_checkpoint(str(tmp_path / "ckpt" / "best.ckpt"), features=features,
                                           map_location="cpu")
    assert torch.equal(re.model.items(), best.model.items())


def test_lr_schedule_constant_is_the_bare_optimizer_and_cosine_decays_to_zero_over_the_budget(tmp_path):
    """train.schedule (lib/trainer.py): constant without warm-up keeps the plain optimizer (the default, as
    before); cosine steps a LambdaLR per batch whose rate ends at 0 after max_epochs of batches."""
    train, val = tiny_split()
    for schedule, warmup in (("constant", 0), ("cosine", 2)):
        c = cfg(max_epochs=3, patience=3, schedule=schedule, warmup_steps=warmup)
        seed_and_pin(c.train.seed, c.train.threads)
        best, facts = fit("sasrec", "id", c, train, val, N_ITEMS, None, str(tmp_path / schedule), progress=False)
        assert isinstance(best, SeqRecModule) and facts["epochs"] == 3
        module = SeqRecModule("sasrec", "id", N_ITEMS, dataclasses.asdict(c.model), dataclasses.asdict(c.train))
        module.total_steps = 10
        out = module.configure_optimizers()
        if schedule == "constant":
            assert isinstance(out, torch.optim.Optimizer)
        else:
            sched = out["lr_scheduler"]["scheduler"]
            rates = []
            for _ in range(10):
                rates.append(out["optimizer"].param_groups[0]["lr"])
                out["optimizer"].step()
                sched.step()
            assert rates[0] == pytest.approx(c.train.lr / 2) and rates[1] == pytest.approx(c.train.lr)  # warm-up
            assert rates[2] > rates[5] > rates[9] > 0 and out["optimizer"].param_groups[0]["lr"] == pytest.approx(0)


def test_mixed_negatives_learn_the_rule_and_refit_with_them(tmp_path):
    """Loss `mixed`: the training code sets the target frequencies its logQ term needs, in fit and refit."""
    from lib.models.training import refit

    train, val = tiny_split()
    c = cfg(loss="mixed", negatives=4)
    _, facts = fit("sasrec", "id", c, train, val, N_ITEMS, None, str(tmp_path / "m"), progress=False)
    assert facts["best_val_ndcg@10"] > 0.9
    module = refit("sasrec", "id", c, train, N_ITEMS, None, epochs=1, progress=False)
    assert module.model.target_p.sum().item() == pytest.approx(1.0)
    with pytest.raises(ValueError, match="train.negatives"):
        TrainConfig(loss="mixed", negatives=-1).validate()
