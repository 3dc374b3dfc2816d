import pytest
import torch
import torch.nn.functional as F

from lib.models.losses import full_softmax_ce, mixed_softmax_ce, sampled_softmax_ce


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


def test_bfloat16_matmuls_stay_close_to_the_exact_loss():
    """ce_dtype bfloat16: logits from bfloat16 matmuls, float32 softmax and sums; value and gradients near exact."""
    torch.manual_seed(1)
    h, e, y = torch.randn(300, 16), torch.randn(501, 16) * 0.3, torch.randint(0, 501, (300,))
    grads = []
    for dtype in (torch.float32, torch.bfloat16):
        hh, ee = h.clone().requires_grad_(), e.clone().requires_grad_()
        loss = full_softmax_ce(hh, ee, y, 64, dtype)
        loss.backward()
        grads.append((loss.detach(), hh.grad, ee.grad))
        assert loss.dtype == hh.grad.dtype == ee.grad.dtype == torch.float32
    (l32, gh32, ge32), (l16, gh16, ge16) = grads
    assert abs(l16 - l32) / l32 < 1e-3
    assert (gh16 - gh32).norm() / gh32.norm() < 2e-2 and (ge16 - ge32).norm() / ge32.norm() < 2e-2
    assert not torch.equal(gh16, gh32)  # the low-precision path is really taken


def test_sampled_softmax_matches_a_loop_over_positions():
    """Each position: -log softmax of its target among [target] + the shared negatives that are not its target."""
    torch.manual_seed(2)
    h, e, y = torch.randn(40, 8), torch.randn(30, 8), torch.randint(0, 30, (40,))
    torch.manual_seed(3)
    got = sampled_softmax_ce(h, e, y, 12)
    torch.manual_seed(3)
    neg = torch.randint(0, 30, (12,))  # the same draw as inside
    want = 0.0
    for i in range(40):
        others = [int(n) for n in neg if int(n) != int(y[i])]  # accidental hits are masked
        logits = torch.stack([h[i] @ e[y[i]]] + [h[i] @ e[n] for n in others])
        want += float(torch.logsumexp(logits, 0) - logits[0])
    assert abs(float(got) - want) < 1e-4 * max(1.0, abs(want))


def test_loss_without_gradients_has_the_same_value_and_backward_scales_by_the_incoming_gradient():
    """Under no_grad the fused pass skips the gradients but not the value; a weighted loss scales both gradients."""
    torch.manual_seed(4)
    h = torch.randn(70, 8, dtype=torch.float64, requires_grad=True)
    e = torch.randn(40, 8, dtype=torch.float64, requires_grad=True)
    y = torch.randint(0, 40, (70,))
    with torch.no_grad():
        quiet = full_softmax_ce(h, e, y, 16)
    ref = F.cross_entropy(h @ e.T, y, reduction="sum")
    assert torch.allclose(quiet, ref)
    gh, ge = torch.autograd.grad(0.37 * ref, (h, e))
    ch, ce = torch.autograd.grad(0.37 * full_softmax_ce(h, e, y, 16), (h, e))
    assert torch.allclose(ch, gh) and torch.allclose(ce, ge)


def test_mixed_softmax_over_a_pool_that_covers_every_class_is_the_full_softmax():
    """With so many uniform draws that every class is surely pooled, pi = 1 and the logQ term vanishes."""
    torch.manual_seed(5)
    h, e, y = torch.randn(60, 8), torch.randn(20, 8), torch.randint(0, 20, (60,))
    p = torch.bincount(y, minlength=20).float() / 60
    got = mixed_softmax_ce(h, e, y, p, 5_000)
    assert float(got) == pytest.approx(float(F.cross_entropy(h @ e.T, y, reduction="sum")), rel=1e-5)


def test_mixed_softmax_matches_a_loop_over_positions_with_the_logq_term():
    """Pool = set of the batch's targets and the uniform draws; every pooled logit minus log P(class pooled)."""
    torch.manual_seed(6)
    m, c, k = 40, 30, 5
    h, e, y = torch.randn(m, 8), torch.randn(c, 8), torch.randint(0, 12, (m,))
    p = torch.rand(c) + 0.1
    p = p / p.sum()
    torch.manual_seed(7)
    got = mixed_softmax_ce(h, e, y, p, k)
    torch.manual_seed(7)
    draws = torch.randint(0, c, (k,))  # the same draw as inside
    pool = sorted({int(i) for i in y} | {int(i) for i in draws})
    want = 0.0
    for i in range(m):
        logits = torch.stack([h[i] @ e[j] - torch.log(1 - (1 - p[j]) ** m * (1 - 1 / c) ** k) for j in pool])
        want += float(torch.logsumexp(logits, 0) - logits[pool.index(int(y[i]))])
    assert abs(float(got) - want) < 1e-4 * max(1.0, abs(want))


def _fit_free_logits(log_q: bool, seed: int) -> float:
    """One context, a free logit per class, targets drawn from a Zipf law: the TV distance between the
    learned softmax and the law after training on the mixed loss (pool = 128 targets + 4 uniform draws)."""
    torch.manual_seed(seed)
    n_classes, m, steps = 40, 128, 400
    p = 1.0 / torch.arange(1, n_classes + 1).float() ** 1.2
    p = p / p.sum()
    w = torch.zeros(n_classes, 1, requires_grad=True)
    opt = torch.optim.Adam([w], lr=0.05)
    decay = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 - s / steps)
    for _ in range(steps):
        y = torch.multinomial(p, m, replacement=True)
        loss = mixed_softmax_ce(torch.ones(m, 1), w, y, p, 4, log_q=log_q) / m
        opt.zero_grad()
        loss.backward()
        opt.step()
        decay.step()
    return 0.5 * float((torch.softmax(w.detach()[:, 0], 0) - p).abs().sum())


def test_the_logq_correction_makes_in_batch_negatives_learn_the_target_law():
    """Without the correction popular classes, pooled in nearly every batch, are pushed down: the learned
    law is flattened (TV ~0.08 in 5 seeds); with it the full softmax's minimiser, the law itself (TV ~0.01)."""
    corrected, raw = _fit_free_logits(True, 0), _fit_free_logits(False, 0)
    assert corrected < 0.03 < 0.05 < raw
