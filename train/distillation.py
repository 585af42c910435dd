"""Knowledge-distillation losses, returned as a dict (timm's ``task/distillation.py`` shape).

KL:  alpha * T^2 * KL(softmax(t/T) || softmax(s/T)) + (1 - alpha) * CE(s, y)
MSE: alpha * MSE(s, t) on logits                     + (1 - alpha) * CE(s, y)
Softmax is over the class dimension (a seed implementation normalised over the batch).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def kd_kl_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    log_p_student = F.log_softmax(student_logits / temperature, dim=-1)
    log_p_teacher = F.log_softmax(teacher_logits / temperature, dim=-1)
    return F.kl_div(log_p_student, log_p_teacher, reduction="batchmean", log_target=True) * temperature**2


def kd_mse_loss(student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
    return F.mse_loss(student_logits, teacher_logits)


class DistillationLoss(nn.Module):
    """Hard-label cross-entropy plus a soft term from the teacher's logits (kind ``none``: the cross-entropy only)."""

    def __init__(self, kind: str = "kl", alpha: float = 0.5, temperature: float = 4.0,
                 class_weights: torch.Tensor | None = None) -> None:
        super().__init__()
        if kind not in ("kl", "mse", "none"):
            raise ValueError(f"kd must be 'kl', 'mse' or 'none', got {kind!r}")
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must lie in [0, 1], got {alpha}")
        self.kind, self.alpha, self.temperature = kind, alpha, temperature
        self.register_buffer("class_weights", class_weights, persistent=False)

    def forward(self, student_logits: torch.Tensor, labels: torch.Tensor,
                teacher_logits: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        student_logits = student_logits.float()
        hard = F.cross_entropy(student_logits, labels, weight=self.class_weights)
        if teacher_logits is None:
            return {"loss": hard, "hard": hard}
        if self.kind == "none":
            raise ValueError("a labels-only loss (kd 'none') was given teacher logits")
        teacher_logits = teacher_logits.detach().float()  # the teacher is a fixed target
        soft = (kd_kl_loss(student_logits, teacher_logits, self.temperature) if self.kind == "kl"
                else kd_mse_loss(student_logits, teacher_logits))
        return {"loss": self.alpha * soft + (1 - self.alpha) * hard, "hard": hard, "soft": soft}
