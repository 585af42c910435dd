"""The 160 px DFDC-only control against its self-blended sibling, alone and each averaged with the teacher (run from
the repository root)."""
from train.compare import on_both_sets

S, C = "docs/runs/teacher-sbi-160/scores", "docs/runs/teacher-dfdc-160/scores"
VAL = {"teacher": f"{S}/val_scores_teacher.csv", "sbi": f"{S}/val_scores.csv", "dfdc": f"{C}/val_scores.csv"}
WILD = {"teacher": f"{S}/wild_scores_teacher.csv", "sbi": f"{S}/wild_scores.csv",
        "dfdc": f"{C}/wild_scores.csv:teacher-dfdc-160"}
PAIRS = [("sbi", "dfdc"), ("teacher+sbi", "teacher+dfdc"), ("teacher+dfdc", "teacher")]

print("\n".join(on_both_sets(VAL, WILD, PAIRS)))
