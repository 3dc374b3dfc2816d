"""tools/cold_id_ridge.py: cold ID rows of a fusion model predicted from content, checked by brute force."""
import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.models.test_seqrec import N_ITEMS, model

spec = importlib.util.spec_from_file_location("cold_id_ridge",
                                              Path(__file__).parent.parent / "tools" / "cold_id_ridge.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def _ridge_by_lstsq(x: np.ndarray, y: np.ndarray, alpha: float, x_new: np.ndarray) -> np.ndarray:
    """Ridge with an unpenalised intercept as one augmented least-squares problem (an independent route)."""
    n, c = x.shape
    a = np.vstack([np.hstack([x, np.ones((n, 1))]), np.hstack([np.sqrt(alpha) * np.eye(c), np.zeros((c, 1))])])
    b = np.vstack([y, np.zeros((c, y.shape[1]))])
    return np.hstack([x_new, np.ones((len(x_new), 1))]) @ np.linalg.lstsq(a, b, rcond=None)[0]


@pytest.mark.parametrize("rep", ["content_plus_id", "sid_plus_id"])
def test_cold_rows_are_the_ridge_prediction_from_the_shared_part_of_warm_items(rep):
    warm = np.ones(N_ITEMS + 1, bool)
    warm[0], warm[-6:] = False, False  # items 25..30 have no training interaction
    m = model("sasrec", rep, warm=warm)
    with torch.no_grad():
        m.items.table.weight.normal_(0, 0.5)  # a trained table: warm rows far from 0
        before = m.items().clone()
        shared = (before - m.items.table.weight * m.items.id_mask).double().numpy()
        table = m.items.table.weight.double().numpy().copy()
    assert np.allclose(shared[~warm], before.numpy()[~warm])  # a cold item is its shared part alone
    facts = bench.impute_cold_ids(m.items, alpha=0.3, holdout=0.25, seed=1)
    cold = ~warm
    cold[0] = False
    expected = _ridge_by_lstsq(shared[warm], table[warm], 0.3, shared[cold])
    with torch.no_grad():
        after = m.items()
    np.testing.assert_allclose(m.items.table.weight.detach().numpy()[cold], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(after.numpy()[cold], shared[cold] + expected, rtol=1e-4, atol=1e-5)
    assert torch.equal(after[torch.as_tensor(warm)], before[torch.as_tensor(warm)]) and torch.all(after[0] == 0)
    assert facts["imputed_rows"] == 6 and facts["holdout_items"] == 6 and facts["holdout_r2"] is not None


def test_a_model_without_cold_id_rows_is_refused():
    with pytest.raises(ValueError, match="not a fusion representation"):
        bench.impute_cold_ids(model("sasrec", "content").items, 1.0)
    with pytest.raises(ValueError, match="not a fusion representation"):
        bench.impute_cold_ids(model("sasrec", "content_plus_id").items, 1.0)  # no warm flags
