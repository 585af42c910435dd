"""teacher-sbi-160 and its three further cycles (blends' share of the fakes 2/5, 2/3, all), alone and each averaged
with the released teacher as in teacher-pair (run from the repository root). The operating point of each pair is
the release rule without the degraded photos: the validation macro-F1 threshold, raised until at most 2 % of the 150
unseen photos are called fake."""
import numpy as np

from train.compare import on_both_sets, read_file_side, read_side
from train.cross_domain import PHOTOS_DIR
from train.data import photo_halves
from train.metrics import pick_operating_point

T, R = "docs/runs/teacher-sbi-160/scores", "docs/runs/teacher-sbi-160-blend-share/scores"
RUNS = ("fewfakes", "blendsonly", "more")
VAL = {"teacher": f"{T}/val_scores_teacher.csv", "sbi160": f"{T}/val_scores.csv",
       **{run: f"{R}/val_scores_{run}.csv" for run in RUNS}}
WILD = {"teacher": f"{T}/wild_scores_teacher.csv", "sbi160": f"{T}/wild_scores.csv",
        **{run: f"{R}/wild_scores.csv:{run}" for run in RUNS}}
PHOTOS = {"teacher": f"{R}/photo_scores_teacher.csv", "sbi160": f"{T}/photo_scores.csv",
          **{run: f"{R}/photo_scores.csv:{run}" for run in RUNS}}
# each mix against the control (the same further cycle on teacher-sbi-160's own mix), and the control against where
# all three started; alone and averaged with the teacher
PAIRS = [(a, b) for pre in ("", "teacher+") for a, b in (
    (f"{pre}fewfakes", f"{pre}more"), (f"{pre}blendsonly", f"{pre}more"), (f"{pre}more", f"{pre}sbi160"))]
UNSEEN = {f.name for f in photo_halves(PHOTOS_DIR)[1]}


print("\n".join(on_both_sets(VAL, WILD, PAIRS)))

print("== operating point of each pair (2 % cap on the 150 unseen photos, band 0.1)")
for member in ("sbi160", *RUNS):
    _, _, y, p = read_side(f"{VAL['teacher']}+{VAL[member]}")
    _, photos = read_file_side(f"{PHOTOS['teacher']}+{PHOTOS[member]}")
    unseen = np.array([p_fake for file, (_, p_fake) in photos.items() if file in UNSEEN])
    point = pick_operating_point(y, p, unseen)
    chosen, free = point["validation"], point["unconstrained"]
    print(f"  teacher+{member}: threshold {point['threshold']:.3f} (unconstrained {free['threshold']:.3f}); "
          f"DFDC fakes called fake {100 * chosen['fake_recall']:.1f} % (unconstrained {100 * free['fake_recall']:.1f} "
          f"%), reals called fake {100 * chosen['false_fake_rate']:.1f} %; unseen photos called fake "
          f"{100 * point['photo_false_fake_rate']:.1f} % (unconstrained {100 * free['photo_false_fake_rate']:.1f} %)")
