import pytest
import torch
import torch.nn.functional as F

from lib.models.losses import full_softmax_ce


@pytest.mark.parametrize("chunk", [1, 7, 64, 0])
def test_chunked_ce_matches_cross_entropy_in_value_and_gradients(chunk):
    torch.manual_seed(0)
    h = torch.randn(50, 8, dtype=torch.float64, requires_grad=True)
    e = torch.randn(30, 8, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 30, (50,))
    ref = F.cross_entropy(h @ e.T, y, reduction="sum")
    gh, ge = torch.autograd.grad(ref, (h, e))
    got = full_softmax_ce(h, e, y, chunk)
    ch, ce = torch.autograd.grad(got, (h, e))
    assert torch.allclose(got, ref) and torch.allclose(ch, gh) and torch.allclose(ce, ge)


def test_chunked_ce_passes_gradcheck():
    torch.manual_seed(1)
    h = torch.randn(9, 4, dtype=torch.float64, requires_grad=True)
    e = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 6, (9,))
    assert torch.autograd.gradcheck(lambda a, b: full_softmax_ce(a, b, y, 4), (h, e))
