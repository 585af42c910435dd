"""Train a teacher, or distil a student from one, with Hugging Face Accelerate.

    accelerate launch -m train.train --config train/configs/student-kd.toml      # a released model's recipe
    accelerate launch -m train.train --model efficientnet_lite0 --data ../shared/data/dfdc_faces \
        --init ../shared/weights/imagenet/efficientnet-lite0-57934424.pth --output-dir runs/teacher
    accelerate launch -m train.train --model resnet8 --data ../shared/data/dfdc_faces \
        --teacher models/teacher --kd kl --alpha 0.5 --temperature 4 --output-dir runs/student-kd

Shaped like accelerate's ``examples/complete_cv_example.py`` and ``by_feature/checkpointing.py``:
``main()`` parses (or runs a recipe's stages, ``train.recipe``), ``training_function(args)`` builds the run
once (data, soft targets, model, optimizer) and alternates ``train_one_epoch`` and ``validate``. Checkpoints
every N steps and at each epoch end; ``--resume-from-checkpoint latest`` continues at the exact step. The best
epoch by validation ROC-AUC is saved in Hub layout under ``OUTPUT_DIR/best`` with the validation-picked threshold.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import math
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator, DataLoaderConfiguration
from accelerate.utils import ProjectConfiguration, set_seed
from sklearn.metrics import roc_auc_score
from tqdm.auto import tqdm
from datasets import Dataset
from transformers import get_cosine_schedule_with_warmup

from deepfake_space.config import DetectorConfig
from deepfake_space.models import DeepfakeDetector, default_config, load_detector, load_init_weights
from deepfake_space.transforms import (build_eval_transform, build_train_transform, convert_input, model_layout,
                                       resize_size)
from train.data import TorchImageDataset, fewer_fakes, load_split, real_rows, subset, with_extra
from train.decoded import decoded_images
from train.degradations import RandomDegradation
from train.distillation import DistillationLoss
from train.metrics import pick_threshold
from train.predict import predict
from train.recipe import run_recipe
from train.sbi import SelfBlendDataset, cached_landmarks
from train.teacher_logits import cached_teacher_logits, weights_stamp
from train.teacher_views import ViewBankDataset, view_bank

logger = logging.getLogger("train")

# Training rows are decoded 8/7 larger than the eval resize size, so RandomResizedCrop's 75-100 % crops
# are downsampled to the input size, never upsampled.
TRAIN_DECODE_MARGIN = 8 / 7


class TrainState:
    """Progress that must survive a resume; saved by ``accelerator.save_state``."""

    def __init__(self) -> None:
        self.step = 0
        self.best_auc = -1.0
        self.bad_epochs = 0

    def state_dict(self) -> dict:
        return {"step": self.step, "best_auc": self.best_auc, "bad_epochs": self.bad_epochs}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.best_auc, self.bad_epochs = state["step"], state["best_auc"], state["bad_epochs"]


def freeze_modules(model: DeepfakeDetector, prefixes: list[str]) -> list[torch.nn.Module]:
    """Freeze the named submodules of the network (weights and BatchNorm statistics)."""
    frozen = [model.net.get_submodule(p) for p in prefixes]
    for module in frozen:
        module.requires_grad_(False)
    return frozen


def warm_start(model: DeepfakeDetector, folder: str) -> dict:
    """Copy a trained detector's weights into ``model`` (a warm restart: a new schedule from where an earlier
    run ended) and return that run's training record, so the released config keeps the whole recipe."""
    source = load_detector(folder)
    if (source.config.arch, source.config.arch_args) != (model.config.arch, model.config.arch_args):
        raise ValueError(f"--init {folder} is a {source.config.arch} {source.config.arch_args}, not a "
                         f"{model.config.arch} {model.config.arch_args}")
    model.net.load_state_dict(source.net.state_dict())
    logger.info("warm start from %s (%s)", folder, source.config.training.get("command", "no training record"))
    return source.config.training


class SoftTargets:
    """Where a batch's teacher logits come from, chosen once per run: none (plain training), a tensor of stored
    logits indexed by row (cached logits of the clean crops, or a view bank's), or the teacher run on the batch."""

    def __init__(self, logits: torch.Tensor | None = None, teacher: DeepfakeDetector | None = None,
                 student: DetectorConfig | None = None) -> None:
        self.logits, self.teacher, self.student = logits, teacher, student

    def __call__(self, x: torch.Tensor, idx: torch.Tensor, accelerator: Accelerator) -> torch.Tensor | None:
        if self.logits is not None:
            return self.logits.to(x.device)[idx]
        if self.teacher is None:
            return None
        with torch.no_grad(), accelerator.autocast():
            return self.teacher(convert_input(x, self.student, self.teacher.config))


def training_source(args: argparse.Namespace, config: DetectorConfig, train_rows: Dataset,
                    device: torch.device) -> tuple[torch.utils.data.Dataset, SoftTargets]:
    """The training dataset and its soft targets: fixed teacher views with their logits (``--teacher-views``), the
    clean crops' cached logits (``--teacher-logits``), the teacher run on every batch, or none."""
    distilling = {"--teacher-views": args.teacher_views, "--teacher-logits": args.teacher_logits}
    given = [flag for flag, value in distilling.items() if value]
    if given and not args.teacher:
        raise ValueError(f"{', '.join(given)} distil from a teacher: --teacher is required")
    if args.teacher_views:
        if args.degrade_off:
            raise ValueError("--degrade-off is for degradations drawn each epoch; a view bank's are fixed (--degrade)")
        images, logits = view_bank(args.teacher, config, train_rows, args.teacher_views, Path(args.teacher_views_dir),
                                   seed=args.teacher_views_seed, degrade=args.degrade)
        targets = SoftTargets() if args.kd == "none" else SoftTargets(logits.reshape(-1, logits.shape[-1]))
        return ViewBankDataset(images, train_rows, config), targets
    if args.kd == "none" and args.teacher:
        raise ValueError("--kd none trains on labels only: a --teacher is only used with it to draw --teacher-views")
    train_images = None
    if args.decode_cache:
        train_images = decoded_images(train_rows, round(resize_size(config) * TRAIN_DECODE_MARGIN),
                                      config.interpolation, Path(args.decode_cache))
    off = {name: 0.0 for name in args.degrade_off.split(",") if name}
    degrade = RandomDegradation(args.degrade, seed=args.seed, probabilities=off) if args.degrade else None
    transform = build_train_transform(config, args.augment_strength, degrade)
    if args.sbi:
        if args.teacher_logits:
            raise ValueError("--sbi draws new fakes every epoch, which cached --teacher-logits cannot score")
        train_ds = SelfBlendDataset(train_rows, transform, cached_landmarks(train_rows, Path(args.landmark_cache)),
                                    train_images)
        logger.info("self-blended images: %d fakes from %d real rows", len(train_ds.sources),
                    train_ds.labels[:train_ds.base_len].count(0))
    else:
        train_ds = TorchImageDataset(train_rows, transform, train_images)
    if not args.teacher:
        return train_ds, SoftTargets()
    if args.teacher_logits:
        return train_ds, SoftTargets(cached_teacher_logits(args.teacher, train_rows, Path(args.teacher_logits)))
    return train_ds, SoftTargets(teacher=load_detector(args.teacher, device).requires_grad_(False), student=config)


def class_weights(labels: list[int]) -> torch.Tensor:
    """Inverse class frequency, so the 57 %-fake training split does not bias the decision."""
    counts = np.bincount(np.asarray(labels), minlength=2).astype(np.float64)
    return torch.tensor(counts.sum() / (2 * counts), dtype=torch.float32)


@dataclass
class Parts:
    """What one training step needs, built once by ``training_function``."""

    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    criterion: DistillationLoss
    soft_targets: SoftTargets
    frozen: list[torch.nn.Module]
    state: TrainState


def train_one_epoch(epoch: int, parts: Parts, train_loader, train_ds, args: argparse.Namespace,
                    batches_per_epoch: int) -> tuple[float, float]:
    """One epoch (or what is left of it after a resume); returns the smoothed loss and images/s. Checkpoints every
    ``--checkpointing-steps`` batches, so an interrupted epoch resumes at its exact batch."""
    accelerator, model, state = parts.accelerator, parts.model, parts.state
    model.train()
    for module in parts.frozen:
        module.eval()
    train_loader.set_epoch(epoch)
    if isinstance(train_ds, ViewBankDataset):
        train_ds.set_epoch(epoch)
    skip = state.step - epoch * batches_per_epoch
    loader = accelerator.skip_first_batches(train_loader, skip) if skip else train_loader
    bar = tqdm(loader, total=batches_per_epoch, initial=skip, desc=f"epoch {epoch}",
               disable=not accelerator.is_local_main_process)
    running, t0, seen = 0.0, time.time(), 0
    for x, y, idx in bar:
        if args.channels_last:
            x = model_layout(x)
        with accelerator.accumulate(model):
            targets = parts.soft_targets(x, idx, accelerator)
            with accelerator.autocast():
                losses = parts.criterion(model(x), y, targets)
            accelerator.backward(losses["loss"])
            parts.optimizer.step()
            parts.scheduler.step()
            parts.optimizer.zero_grad()
        state.step += 1
        seen += len(x)
        running = 0.98 * running + 0.02 * losses["loss"].item() if running else losses["loss"].item()
        img_s = seen * accelerator.num_processes / (time.time() - t0)
        bar.set_postfix(loss=f"{running:.4f}", img_s=f"{img_s:.1f}")
        if state.step % args.log_every == 0:
            accelerator.log({f"train/{k}": v.item() for k, v in losses.items()}
                            | {"train/lr": parts.scheduler.get_last_lr()[0]}, step=state.step)
        if args.checkpointing_steps and state.step % args.checkpointing_steps == 0 \
                and state.step % batches_per_epoch != 0:
            accelerator.save_state()
        if args.max_steps and state.step >= args.max_steps:
            break
    return running, seen * accelerator.num_processes / max(time.time() - t0, 1e-9)


def validate(model: torch.nn.Module, loader, accelerator: Accelerator,
             channels_last: bool) -> tuple[np.ndarray, np.ndarray]:
    """Labels and P(fake) for every validation row, gathered over processes."""
    model.eval()

    def forward(x: torch.Tensor) -> torch.Tensor:
        with accelerator.autocast():
            return model(model_layout(x) if channels_last else x).float().softmax(-1)[:, 1]

    y, p = predict(forward, loader, "validate", accelerator.is_local_main_process, accelerator.gather_for_metrics)
    return y, p.numpy()


def append_csv(path: Path, row: dict) -> None:
    new = not path.exists()
    with path.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row))
        if new:
            writer.writeheader()
        writer.writerow(row)


def training_function(args: argparse.Namespace) -> float:
    """Train and return the best validation ROC-AUC."""
    out = Path(args.output_dir)
    accelerator = Accelerator(
        mixed_precision=args.mixed_precision,
        gradient_accumulation_steps=args.gradient_accumulation_steps,
        log_with="tensorboard" if args.with_tracking else None,
        project_config=ProjectConfiguration(project_dir=str(out), logging_dir=str(out / "logs"),
                                            automatic_checkpoint_naming=True, total_limit=2),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=True),
    )
    set_seed(args.seed)
    if accelerator.is_main_process:
        out.mkdir(parents=True, exist_ok=True)
        (out / "args.json").write_text(json.dumps(vars(args), indent=2))
    if args.with_tracking:
        # trackers take scalars only (a recipe stage's record is a dict, kept in recipe.json)
        accelerator.init_trackers("train", config={k: v for k, v in vars(args).items()
                                                   if isinstance(v, (int, float, str, bool))})

    overrides = {"input_size": args.input_size} if args.input_size else {}
    model = DeepfakeDetector(default_config(args.model, **overrides))
    config = model.config
    init_record = None
    if args.init and Path(args.init).is_dir():
        init_record = warm_start(model, args.init)
    elif args.init:
        load_init_weights(args.model, model.net, args.init)
    frozen = freeze_modules(model, args.freeze.split(",") if args.freeze else [])

    with accelerator.main_process_first():
        train_rows = subset(load_split(args.data, args.train_split), args.train_subset, args.seed)
        if args.real_only:
            train_rows = real_rows(train_rows)
        elif args.fake_subset is not None:
            train_rows = fewer_fakes(train_rows, args.fake_subset, args.seed)
        train_rows = with_extra(train_rows, args.extra_train, args.extra_repeat)
        val_rows = subset(load_split(args.data, args.val_split), args.val_subset, args.seed)
    val_images = None
    if args.decode_cache:
        with accelerator.main_process_first():
            val_images = decoded_images(val_rows, resize_size(config), config.interpolation, Path(args.decode_cache))
    val_ds = TorchImageDataset(val_rows, build_eval_transform(config), val_images)
    # the teacher's weights by content, read before they are used, so the record names what this run distilled
    teacher_weights = weights_stamp(args.teacher) if distils(args) else None
    with accelerator.main_process_first():
        train_ds, soft_targets = training_source(args, config, train_rows, accelerator.device)
    # a view bank picks each epoch's views in set_epoch, which persistent workers would not see
    persistent = args.num_workers > 0 and not isinstance(train_ds, ViewBankDataset)
    loader_args = {"num_workers": args.num_workers, "persistent_workers": persistent}
    train_loader = torch.utils.data.DataLoader(train_ds, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                               **loader_args)
    val_loader = torch.utils.data.DataLoader(val_ds, batch_size=args.batch_size * 2, **loader_args)
    criterion = DistillationLoss(args.kd, args.alpha, args.temperature,
                                 class_weights(train_ds.labels) if args.class_weights else None)

    if args.channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=args.lr,
                                  weight_decay=args.weight_decay)
    steps_per_epoch = math.ceil(len(train_loader) / accelerator.num_processes / args.gradient_accumulation_steps)
    scheduler = get_cosine_schedule_with_warmup(optimizer, args.warmup_steps, steps_per_epoch * args.epochs)
    model, optimizer, train_loader, val_loader, scheduler = accelerator.prepare(
        model, optimizer, train_loader, val_loader, scheduler)
    criterion = criterion.to(accelerator.device)
    state = TrainState()
    accelerator.register_for_checkpointing(state)
    parts = Parts(accelerator, model, optimizer, scheduler, criterion, soft_targets, frozen, state)

    if args.resume_from_checkpoint:
        ckpt = args.resume_from_checkpoint
        existing = sorted(int(p.name.split("_")[-1]) for p in (out / "checkpoints").glob("checkpoint_*"))
        if ckpt == "latest":
            if not existing:
                raise FileNotFoundError(f"no checkpoint under {out / 'checkpoints'} to resume from")
            ckpt = str(out / "checkpoints" / f"checkpoint_{existing[-1]}")
        accelerator.load_state(ckpt)
        # load_state does not restore automatic checkpoint numbering: without this, the next save_state
        # would write checkpoint_0 again (clashing with, or sorting below, the checkpoints already there).
        accelerator.project_configuration.iteration = (existing[-1] if existing else -1) + 1
        accelerator.print(f"resumed from {ckpt} at step {state.step}")

    batches_per_epoch = len(train_loader)
    start_epoch = state.step // batches_per_epoch
    for epoch in range(start_epoch, args.epochs):
        if state.bad_epochs >= args.patience:
            accelerator.print(f"early stop: validation AUC has not improved for {args.patience} epochs")
            break
        running, img_s = train_one_epoch(epoch, parts, train_loader, train_ds, args, batches_per_epoch)
        y_val, p_val = validate(model, val_loader, accelerator, args.channels_last)
        auc = float(roc_auc_score(y_val, p_val))
        improved = auc > state.best_auc
        state.best_auc, state.bad_epochs = (auc, 0) if improved else (state.best_auc, state.bad_epochs + 1)
        row = {"epoch": epoch, "step": state.step, "train_loss": round(running, 5), "val_auc": round(auc, 5),
               "best_val_auc": round(state.best_auc, 5), "lr": scheduler.get_last_lr()[0],
               "img_per_s": round(img_s, 1)}
        accelerator.log({"val/auc": auc}, step=state.step)
        accelerator.print(json.dumps(row))
        if accelerator.is_main_process:
            append_csv(out / "summary.csv", row)
            if improved:
                save_release(accelerator.unwrap_model(model), out / "best", y_val, p_val, args, epoch, auc,
                             init_record, teacher_weights)
        accelerator.wait_for_everyone()
        accelerator.save_state()
        if args.max_steps and state.step >= args.max_steps:
            break

    accelerator.end_training()
    return state.best_auc


def _without(argv: list[str], options: tuple[str, ...]) -> list[str]:
    """``argv`` less the named options and their values."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in options:
            skip = True
        elif not arg.startswith(tuple(f"{o}=" for o in options)):
            kept.append(arg)
    return kept


def recipe_command(argv: list[str]) -> str:
    """The command that reproduces a run: its arguments without ``--resume-from-checkpoint`` (a resumed run
    ends where an uninterrupted one would)."""
    return shlex.join(["accelerate", "launch", "-m", "train.train", *_without(argv, ("--resume-from-checkpoint",))])


def distils(args: argparse.Namespace) -> bool:
    """Whether the run learns from a teacher's logits (``--kd none`` with ``--teacher-views`` uses only the pixels of
    the teacher's view bank: the labels-only control of a distilled run, on the very same images)."""
    return bool(args.teacher) and args.kd != "none"


def extra_train_record(extra_train: str | None) -> dict | None:
    """What ``train.transfer_set`` wrote into the extra split (how many blends and photo faces), for the card."""
    record = Path(extra_train) / "record.json" if extra_train else None
    return json.loads(record.read_text()) if record is not None and record.is_file() else None


def save_release(model: DeepfakeDetector, folder: Path, y_val: np.ndarray, p_val: np.ndarray,
                 args: argparse.Namespace, epoch: int, auc: float, init_record: dict | None = None,
                 teacher_weights: str | None = None) -> None:
    """Save in Hub layout with the threshold picked on validation and the recipe that made it (with the
    record of the run it warm-started from, if any, and the teacher's weights stamp)."""
    model.config.threshold = pick_threshold(y_val, p_val)
    model.config.training = {
        "command": args.recipe["command"] if args.recipe else recipe_command(sys.argv[1:]),
        "data": str(args.data), "epoch": epoch, "val_auc": round(auc, 5),
        "teacher": args.teacher if distils(args) else None, "teacher_weights": teacher_weights,
        "view_bank_teacher": args.teacher if args.teacher_views and not distils(args) else None,
        "kd": args.kd if distils(args) else None,
        "teacher_views": args.teacher_views or None,
        "teacher_views_seed": args.teacher_views_seed if args.teacher_views else None,
        "alpha": args.alpha if distils(args) else None, "temperature": args.temperature if distils(args) else None,
        "sbi": bool(args.sbi), "real_only": bool(args.real_only), "fake_subset": args.fake_subset,
        "extra_train": args.extra_train,
        "extra_repeat": args.extra_repeat if args.extra_train else None,
        "extra_train_record": extra_train_record(args.extra_train), "degrade": args.degrade or None,
        "degrade_off": args.degrade_off or None,
    }
    if args.recipe:
        model.config.training["recipe"] = args.recipe
    if init_record is not None:
        model.config.training["warm_start"] = {"from": args.init, **init_record}
    model.save_pretrained(folder, config=model.config)
    logger.info("saved best model (val AUC %.4f) to %s", auc, folder)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", help="a recipe (train/configs/NAME.toml): run its stages; options given here override "
                                    "every stage (train.recipe)")
    p.add_argument("--stage", help="with --config: run only this stage")
    p.add_argument("--model", help="registered architecture name (required)")
    p.add_argument("--data", help="HF-datasets folder, parquet file or real/ fake/ folder (required)")
    p.add_argument("--train-split", default="train")
    p.add_argument("--val-split", default="validation")
    p.add_argument("--train-subset", type=int, help="use a seeded random subset of this many training rows")
    p.add_argument("--val-subset", type=int)
    p.add_argument("--init", help="ImageNet checkpoint to start from (e.g. ../shared/weights/imagenet/...), or a "
                                  "trained detector folder of the same architecture (a warm restart)")
    p.add_argument("--freeze", default="", help="comma-separated submodules of the network to freeze")
    p.add_argument("--input-size", type=int, help="override the architecture's default input size")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many batches in total (0: no cap)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup-steps", type=int, default=200)
    p.add_argument("--augment-strength", type=float, default=1.0)
    p.add_argument("--class-weights", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--teacher", help="teacher model folder or org/name@rev: distil instead of plain training")
    p.add_argument("--teacher-logits", help="cache file of the teacher's logits on the training rows")
    p.add_argument("--teacher-views", type=int, default=0,
                   help="distil on this many fixed augmented views per row, each with the teacher's logits on it "
                        "(train.teacher_views), instead of fresh augmentations")
    p.add_argument("--teacher-views-dir", default="cache/teacher_views", help="folder of the view bank")
    p.add_argument("--teacher-views-seed", type=int, default=0,
                   help="seed of the view bank's augmentations: another seed draws views the student has not seen")
    p.add_argument("--extra-train", help="a further parquet split of rows to train on, appended after "
                                         "--train-subset (e.g. train.transfer_set's self-blends and photo faces)")
    p.add_argument("--extra-repeat", type=int, default=1, help="how many times the --extra-train rows are appended")
    p.add_argument("--degrade", type=float, default=0.0,
                   help="strength of the random upload degradations (train.degradations; 0: none); with "
                        "--teacher-views, fixed in the bank on the student's pixels only")
    p.add_argument("--degrade-off", default="", metavar="NAME,...",
                   help="degradations left out of the chain (e.g. h264 where PyAV is not installed)")
    p.add_argument("--sbi", action="store_true",
                   help="add one self-blended fake per real training row with landmarks, drawn anew each epoch "
                        "(train.sbi)")
    p.add_argument("--real-only", action="store_true",
                   help="keep only the real rows of the training split (after --train-subset): with --sbi the "
                        "self-blends are the only fakes, as in Shiohara & Yamasaki's recipe")
    p.add_argument("--fake-subset", type=int,
                   help="keep every real row and a seeded this many fake rows of the training split (after "
                        "--train-subset): with --sbi the self-blends weigh more among the fakes")
    p.add_argument("--landmark-cache", default="cache/landmarks", help="folder of the cached 68-point landmarks")
    p.add_argument("--kd", choices=["kl", "mse", "none"], default="kl",
                   help="distillation loss; none: labels only, on the pixels of --teacher-views (a control run)")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the distillation term")
    p.add_argument("--temperature", type=float, default=4.0)
    p.add_argument("--patience", type=int, default=3, help="early stop after this many epochs without AUC gain")
    p.add_argument("--mixed-precision", choices=["no", "fp16", "bf16"], default="no")
    p.add_argument("--gradient-accumulation-steps", type=int, default=1)
    p.add_argument("--checkpointing-steps", type=int, default=200, help="save state every N batches (0: epochs only)")
    p.add_argument("--resume-from-checkpoint", help="checkpoint folder, or 'latest'")
    p.add_argument("--output-dir", help="where the run's checkpoints, logs and best model go (required)")
    p.add_argument("--with-tracking", action="store_true", help="log to TensorBoard under OUTPUT_DIR/logs")
    p.add_argument("--log-every", type=int, default=20)
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("--decode-cache", help="decode the images once into uint8 arrays in this folder "
                                          "(fast epochs for small students; needs ~N x size^2 x 3 bytes of disk)")
    p.add_argument("--channels-last", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--seed", type=int, default=42)
    p.set_defaults(recipe=None)  # set by train.recipe for a recipe's stage
    return p


def parse_args(argv: list[str] | None = None, recipe_values: dict | None = None) -> argparse.Namespace:
    """The options of one run: ``argv`` over a recipe stage's values (``recipe_values``) over the defaults."""
    p = build_parser()
    if recipe_values:
        unknown = sorted(set(recipe_values) - {a.dest for a in p._actions} | {"config", "stage"} & set(recipe_values))
        if unknown:
            raise ValueError(f"a recipe sets options train.train does not have: {', '.join(unknown)}")
        p.set_defaults(**recipe_values)
    args = p.parse_args(argv)
    if args.real_only and args.fake_subset is not None:
        p.error("--real-only keeps no fake row: it and --fake-subset exclude each other")
    if args.fake_subset is not None and args.fake_subset < 0:
        p.error(f"--fake-subset must be 0 or more, got {args.fake_subset}")
    if args.config is None:
        missing = [f"--{name}" for name in ("model", "data", "output_dir") if getattr(args, name) is None]
        if missing:
            p.error(f"{', '.join(missing)} required (or --config)")
    return args


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.config:
        overrides = _without(argv, ("--config", "--stage"))
        try:
            run_recipe(args.config, overrides, parse_args, training_function, only=args.stage)
        except (ValueError, FileNotFoundError) as e:
            sys.exit(f"error: {e}")
    else:
        training_function(args)


if __name__ == "__main__":
    main()
