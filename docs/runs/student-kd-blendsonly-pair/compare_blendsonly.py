"""KD from the blends-only pair against the labels-only control of docs/runs/student-kd-blends (the same pixels and
schedule), from student-kd and from student-scratch; each against where it started and against the cycle distilled
from teacher-pair; then how well each model tells the DFDC validation reals from one self-blend of each
(train.compare.separation). Run from the repository root."""
from train.compare import on_both_sets, separation

PAIR, BLENDS, HERE = ("docs/runs/student-kd-pair/scores", "docs/runs/student-kd-blends/scores",
                      "docs/runs/student-kd-blendsonly-pair/scores")
FOLDER = {"student-kd": PAIR, "student-scratch": PAIR, "kd-blends": BLENDS, "scratch-blends": BLENDS,
          "kd-blendsonly": HERE, "kd-blendsonly-from-scratch": HERE}
VAL = {name: f"{folder}/{name}_val.csv" for name, folder in FOLDER.items()}
WILD = {name: f"{folder}/wild_scores.csv:{name}" for name, folder in FOLDER.items()}
# the KD - scratch; the same from one starting point (the soft targets alone); each run against where it
# started; this teacher against teacher-pair
PAIRS = [("kd-blendsonly", "scratch-blends"), ("kd-blendsonly-from-scratch", "scratch-blends"),
         ("kd-blendsonly", "student-kd"), ("kd-blendsonly-from-scratch", "student-scratch"),
         ("kd-blendsonly", "kd-blends"), ("kd-blendsonly-from-scratch", "kd-blends")]

print("\n".join(on_both_sets(VAL, WILD, PAIRS)))

print("== validation reals against their self-blends")
TEACHERS = {"teacher-pair": BLENDS, "teacher-pair-blendsonly": HERE}
# student-kd-blends keeps the blend scores of the released students beside its own
BLEND_FOLDER = {**FOLDER, "student-kd": BLENDS, "student-scratch": BLENDS}
for name, folder in {**TEACHERS, **BLEND_FOLDER}.items():
    val = VAL.get(name, f"{folder}/{name}_val.csv")
    print(f"  {name}: {separation(val, f'{folder}/{name}_val_blends.csv')}")
