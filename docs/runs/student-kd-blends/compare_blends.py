"""KD against its labels-only control after one cycle on teacher-pair's bank with self-blends (KD at alpha 0.5 and
0.9), each against the released student it restarted from and the cycle without blends (docs/runs/student-kd-pair);
then whether each model learned to see self-blends: ROC-AUC of its P(fake) on the DFDC validation reals against one
self-blend of each of them (scores/NAME_val_blends.csv: train.evaluate --tta on `python -m train.transfer_set --split
validation`, whose photo rows are left out here). Run from the repository root."""
from train.compare import on_both_sets, separation

P, B = "docs/runs/student-kd-pair/scores", "docs/runs/student-kd-blends/scores"
EARLIER, NEW = ("student-kd", "student-scratch", "kd-pair", "scratch-pair"), ("kd-blends", "kd-blends-a0.9",
                                                                              "scratch-blends")
VAL = {**{name: f"{P}/{name}_val.csv" for name in EARLIER}, **{name: f"{B}/{name}_val.csv" for name in NEW}}
WILD = {**{name: f"{P}/wild_scores.csv:{name}" for name in EARLIER},
        **{name: f"{B}/wild_scores.csv:{name}" for name in NEW}}
# the issue's KD - scratch on this cycle and on the released pair; each cycle against where it started; the blends'
# bank against the one without them
PAIRS = [("kd-blends", "scratch-blends"), ("kd-blends-a0.9", "scratch-blends"), ("student-kd", "student-scratch"),
         ("kd-blends", "student-kd"), ("kd-blends-a0.9", "student-kd"), ("scratch-blends", "student-scratch"),
         ("kd-blends", "kd-pair"), ("scratch-blends", "scratch-pair")]

print("\n".join(on_both_sets(VAL, WILD, PAIRS)))

print("== validation reals against their self-blends")
for name, val in {"teacher-pair": f"{B}/teacher-pair_val.csv", **VAL}.items():
    print(f"  {name}: {separation(val, f'{B}/{name}_val_blends.csv')}")
