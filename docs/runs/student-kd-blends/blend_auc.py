"""Did a student learn to see self-blends? ROC-AUC of each model's P(fake) on the DFDC validation reals against one
self-blend of each of them (scores/NAME_val_blends.csv: train.evaluate --tta on `python -m train.transfer_set --split
validation`, whose photo rows are left out here); run from the repository root."""
import numpy as np
from sklearn.metrics import roc_auc_score

from train.compare import read_scores

P, B = "docs/runs/student-kd-pair/scores", "docs/runs/student-kd-blends/scores"
VAL = {"teacher-pair": f"{B}/teacher-pair_val.csv",
       **{name: f"{P}/{name}_val.csv" for name in ("student-kd", "student-scratch", "kd-pair", "scratch-pair")},
       **{name: f"{B}/{name}_val.csv" for name in ("kd-blends", "scratch-blends", "kd-blends-a0.9")}}

for name, val in VAL.items():
    _, _, y_val, p_val = read_scores(val)
    _, _, y_blend, p_blend = read_scores(f"{B}/{name}_val_blends.csv")
    reals, blends = p_val[y_val == 0], p_blend[y_blend == 1]
    auc = roc_auc_score(np.r_[np.zeros(len(reals)), np.ones(len(blends))], np.r_[reals, blends])
    print(f"{name}: {auc:.3f} ({len(reals)} reals, {len(blends)} blends; median P(fake) {np.median(reals):.3f} "
          f"and {np.median(blends):.3f})")
