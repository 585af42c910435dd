"""KD against its labels-only control after one cycle on teacher-pair's bank with self-blends (KD at alpha 0.5 and
0.9), and each against the released student it restarted from and the cycle without blends
(docs/runs/student-kd-pair); run from the repository root."""
from train.compare import compare_named, describe

P, B = "docs/runs/student-kd-pair/scores", "docs/runs/student-kd-blends/scores"
EARLIER = ("student-kd", "student-scratch", "kd-pair", "scratch-pair")
VAL = {**{name: f"{P}/{name}_val.csv" for name in EARLIER},
       **{name: f"{B}/{name}_val.csv" for name in ("kd-blends", "kd-blends-a0.9", "scratch-blends")}}
WILD = {**{name: f"{P}/wild_scores.csv:{name}" for name in EARLIER},
        **{name: f"{B}/wild_scores.csv:{name}" for name in ("kd-blends", "kd-blends-a0.9", "scratch-blends")}}
# the issue's KD - scratch on this cycle and on the released pair; each cycle against where it started; the blends'
# bank against the one without them
PAIRS = [("kd-blends", "scratch-blends"), ("kd-blends-a0.9", "scratch-blends"), ("student-kd", "student-scratch"),
         ("kd-blends", "student-kd"), ("kd-blends-a0.9", "student-kd"), ("scratch-blends", "student-scratch"),
         ("kd-blends", "kd-pair"), ("scratch-blends", "scratch-pair")]

for name, files, group_regex in (("DFDC validation", VAL, None),
                                 ("wild_dev", WILD, r"^(.*)_(left_real|right_swapped)")):
    print(f"== {name}")
    for r in compare_named(files, PAIRS, group_regex):
        print("  " + describe(r))
