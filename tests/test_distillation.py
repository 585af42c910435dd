"""The knowledge-distillation loss: KL over classes with T^2 scaling, the alpha mix, the MSE variant."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from train.distillation import DistillationLoss, kd_kl_loss, kd_mse_loss

torch.set_num_threads(1)


def _logits(n: int = 6, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    student = torch.randn(n, 2, generator=g) * 2
    teacher = torch.randn(n, 2, generator=g) * 3
    labels = torch.randint(0, 2, (n,), generator=g)
    return student, teacher, labels


def _hand_kl(student: list[list[float]], teacher: list[list[float]], t: float) -> float:
    """T^2 * mean over samples of sum over classes p_t * log(p_t / p_s), with softmax(logits / T)."""

    def softmax(row):
        e = [math.exp(v / t) for v in row]
        return [v / sum(e) for v in e]

    total = 0.0
    for s_row, t_row in zip(student, teacher):
        ps, pt = softmax(s_row), softmax(t_row)
        total += sum(q * math.log(q / p) for p, q in zip(ps, pt))
    return t * t * total / len(student)


def test_kl_term_equals_hand_computation():
    student = [[1.0, -0.5], [0.2, 0.3], [-2.0, 1.5]]
    teacher = [[2.0, -1.0], [-0.4, 0.9], [0.0, 0.0]]
    for t in (1.0, 2.0, 4.0):
        got = kd_kl_loss(torch.tensor(student), torch.tensor(teacher), t).item()
        assert got == pytest.approx(_hand_kl(student, teacher, t), rel=1e-5)
        soft = DistillationLoss("kl", alpha=1.0, temperature=t)(torch.tensor(student), torch.tensor([0, 1, 1]),
                                                                   torch.tensor(teacher))["soft"]
        assert soft.item() == pytest.approx(_hand_kl(student, teacher, t), rel=1e-5)


def test_kl_is_zero_when_student_matches_teacher():
    s, _, _ = _logits()
    assert kd_kl_loss(s, s.clone(), 4.0).item() == pytest.approx(0.0, abs=1e-6)


def test_softmax_is_over_classes_not_the_batch():
    """A seed implementation normalised over the batch dimension; each of these checks catches that."""
    s, t, _ = _logits(n=8)
    batch = kd_kl_loss(s, t, 3.0)
    # 1. the loss of a batch is the mean of the per-sample losses (a batch-dim softmax of one sample is 1)
    per_sample = torch.stack([kd_kl_loss(s[i:i + 1], t[i:i + 1], 3.0) for i in range(len(s))])
    assert per_sample.min() > 0
    assert batch.item() == pytest.approx(per_sample.mean().item(), rel=1e-5)
    # 2. shifting one sample's logits by a constant does not change its class probabilities
    shift = torch.arange(len(s), dtype=torch.float32).unsqueeze(1) * 5
    assert kd_kl_loss(s + shift, t - shift, 3.0).item() == pytest.approx(batch.item(), rel=1e-5)
    # 3. permuting the batch permutes nothing
    perm = torch.randperm(len(s), generator=torch.Generator().manual_seed(1))
    assert kd_kl_loss(s[perm], t[perm], 3.0).item() == pytest.approx(batch.item(), rel=1e-6)


def test_batch_dimension_softmax_would_be_caught():
    """The checks above really distinguish the two: a batch-dim version fails check 1."""
    s, t, _ = _logits(n=8)

    def wrong(s, t, temp):
        return F.kl_div(F.log_softmax(s / temp, dim=0), F.log_softmax(t / temp, dim=0), reduction="batchmean",
                        log_target=True) * temp**2

    per_sample = torch.stack([wrong(s[i:i + 1], t[i:i + 1], 3.0) for i in range(len(s))])
    assert per_sample.abs().max() < 1e-6 < wrong(s, t, 3.0).item()


def test_temperature_squared_scaling():
    s, t, _ = _logits()
    for temp in (1.0, 2.0, 5.0):
        unscaled = F.kl_div(F.log_softmax(s / temp, -1), F.softmax(t / temp, -1), reduction="batchmean")
        assert kd_kl_loss(s, t, temp).item() == pytest.approx(temp**2 * unscaled.item(), rel=1e-5)


def test_alpha_zero_is_pure_cross_entropy_and_alpha_one_pure_soft():
    s, t, y = _logits()
    ce = F.cross_entropy(s, y)
    for kind in ("kl", "mse"):
        out = DistillationLoss(kind, alpha=0.0, temperature=4.0)(s, y, t)
        assert out["loss"].item() == pytest.approx(ce.item(), rel=1e-6)
        out = DistillationLoss(kind, alpha=1.0, temperature=4.0)(s, y, t)
        assert out["loss"].item() == pytest.approx(out["soft"].item(), rel=1e-6)
        mixed = DistillationLoss(kind, alpha=0.3, temperature=4.0)(s, y, t)
        assert mixed["loss"].item() == pytest.approx(0.3 * out["soft"].item() + 0.7 * ce.item(), rel=1e-5)


def test_without_teacher_logits_the_loss_is_cross_entropy():
    s, _, y = _logits()
    out = DistillationLoss("kl", alpha=0.9)(s, y)
    assert out["loss"].item() == pytest.approx(F.cross_entropy(s, y).item(), rel=1e-6)
    assert "soft" not in out


def test_class_weights_reach_the_hard_term():
    s, t, y = _logits()
    w = torch.tensor([0.25, 3.0])
    out = DistillationLoss("kl", alpha=0.0, class_weights=w)(s, y, t)
    assert out["hard"].item() == pytest.approx(F.cross_entropy(s, y, weight=w).item(), rel=1e-6)


def test_mse_variant_on_logits():
    s, t, y = _logits()
    expected = ((s - t) ** 2).mean().item()
    assert kd_mse_loss(s, t).item() == pytest.approx(expected, rel=1e-6)
    assert DistillationLoss("mse", alpha=1.0)(s, y, t)["soft"].item() == pytest.approx(expected, rel=1e-6)


def test_gradients_flow_into_the_student_only():
    s, t, y = _logits()
    for kind in ("kl", "mse"):
        student = s.clone().requires_grad_(True)
        teacher = t.clone().requires_grad_(True)
        DistillationLoss(kind, alpha=0.5)(student, y, teacher)["loss"].backward()
        assert student.grad is not None and student.grad.abs().sum() > 0
        assert teacher.grad is None or torch.count_nonzero(teacher.grad) == 0


def test_invalid_arguments_are_refused():
    with pytest.raises(ValueError):
        DistillationLoss("cosine")
    with pytest.raises(ValueError):
        DistillationLoss("kl", alpha=1.5)


def test_a_labels_only_loss_is_the_cross_entropy_and_refuses_teacher_logits():
    student, teacher, labels = _logits()
    loss = DistillationLoss("none")
    assert torch.allclose(loss(student, labels)["loss"], F.cross_entropy(student, labels))
    with pytest.raises(ValueError, match="labels-only"):
        loss(student, labels, teacher)
