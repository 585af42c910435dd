"""The 160 px DFDC-only control against its self-blended sibling, alone and each averaged with the teacher."""
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from train.compare import file_groups
from train.metrics import paired_auc_difference

S, C = "docs/runs/teacher-sbi-160/scores", "docs/runs/teacher-dfdc-160/scores"


def logit(p):
    p = np.clip(np.asarray(p, dtype=float), 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


val = pd.read_csv(f"{S}/val_scores_teacher.csv").rename(columns={"p_fake": "teacher"})
for key, path in (("sbi", f"{S}/val_scores.csv"), ("dfdc", f"{C}/val_scores.csv")):
    other = pd.read_csv(path)
    assert (other["index"].values == val["index"].values).all() and (other.label.values == val.label.values).all()
    val[key] = other.p_fake.values
wild = (pd.read_csv(f"{S}/wild_scores_teacher.csv")[["file", "label", "teacher_p_fake"]]
        .merge(pd.read_csv(f"{S}/wild_scores.csv")[["file", "teacher-sbi-160_p_fake"]], on="file")
        .merge(pd.read_csv(f"{C}/wild_scores.csv")[["file", "teacher-dfdc-160_p_fake"]], on="file"))
wild.columns = ["file", "label", "teacher", "sbi", "dfdc"]
wild["y"] = (wild.label == "fake").astype(int)
wild["group"] = file_groups(list(wild.file), r"^(.*)_(left_real|right_swapped)")
for name, df, y in (("DFDC validation", val, val.label), ("wild_dev", wild, wild.y)):
    s = {k: logit(df[k]) for k in ("teacher", "sbi", "dfdc")}
    s["teacher+sbi"], s["teacher+dfdc"] = s["teacher"] + s["sbi"], s["teacher"] + s["dfdc"]
    print(f"== {name} (n = {len(df)})")
    for k, v in s.items():
        print(f"  {k:14s} AUC {roc_auc_score(y, v):.4f}")
    for a, b in (("sbi", "dfdc"), ("teacher+sbi", "teacher+dfdc"), ("teacher+dfdc", "teacher")):
        r = paired_auc_difference(y, s[a], s[b], list(df.group))
        print(f"  {a} - {b}: {100 * r['difference']:+.2f} points ({100 * r['ci_low']:+.2f} to {100 * r['ci_high']:+.2f},"
              f" {r['units']} groups)")
