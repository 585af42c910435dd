"""The 160 px DFDC-only control against its self-blended sibling, alone and each averaged with the teacher (run from
the repository root)."""
from train.compare import WILD_DEV_GROUPS, compare_named, describe

S, C = "docs/runs/teacher-sbi-160/scores", "docs/runs/teacher-dfdc-160/scores"
SETS = {
    "DFDC validation": ({"teacher": f"{S}/val_scores_teacher.csv", "sbi": f"{S}/val_scores.csv",
                         "dfdc": f"{C}/val_scores.csv"}, None),
    "wild_dev": ({"teacher": f"{S}/wild_scores_teacher.csv", "sbi": f"{S}/wild_scores.csv",
                  "dfdc": f"{C}/wild_scores.csv:teacher-dfdc-160"}, WILD_DEV_GROUPS),
}
PAIRS = [("sbi", "dfdc"), ("teacher+sbi", "teacher+dfdc"), ("teacher+dfdc", "teacher")]

for name, (files, group_regex) in SETS.items():
    print(f"== {name}")
    for r in compare_named(files, PAIRS, group_regex):
        print("  " + describe(r))
