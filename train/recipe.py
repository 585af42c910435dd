"""Recipes: one TOML file per released model in ``train/configs/``, its whole training as a list of stages.

    accelerate launch -m train.train --config train/configs/teacher.toml            # every stage, in order
    accelerate launch -m train.train --config train/configs/teacher.toml --stage sbi --epochs 2   # one, overridden

A recipe names the model (``name``, the folder under ``models/`` it is released as; ``base_model``, for a student,
the teacher's Hub repo; ``tta = true`` when it is released to average each face with its mirror), where its stages run
(``output_dir``: stage NAME trains into ``OUTPUT_DIR/NAME``), the ``[defaults]`` every stage shares and the
``[[stages]]``, each a table of ``train.train`` options (a warm restart is a stage whose ``init`` is an earlier
stage's ``OUTPUT_DIR/NAME/best``). Options after ``--config`` override every stage that runs.

A stage's resolved options are saved as ``recipe.json`` in its folder and copied into the released config.json
(and so into the model card). A finished stage (``finished.json``) is skipped; an unfinished one resumes from
its latest checkpoint; a folder made from other options is refused, never appended to.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

logger = logging.getLogger("recipe")

RECIPE_FILE = "recipe.json"
FINISHED_FILE = "finished.json"
# Options that change how a run is carried out, not what it trains: they may differ between a run and its resume.
NOT_RECIPE = ("resume_from_checkpoint", "recipe", "config", "stage", "num_workers", "with_tracking")


@dataclass
class Stage:
    """One run of a recipe: its name, its options (recipe defaults, stage, overrides) and its folder."""

    name: str
    values: dict[str, Any]
    output_dir: Path


@dataclass
class Recipe:
    path: Path
    name: str
    description: str
    stages: list[Stage]
    base_model: str | None = None  # the Hub repo a student's card links as its teacher
    tta: bool | None = None  # released to average each face with its mirror (train.release)

    @property
    def final(self) -> Stage:
        """The stage whose best weights are released."""
        return self.stages[-1]


def load_recipe(path: str | Path) -> Recipe:
    """Read and check a recipe file (no option is interpreted here: ``train.train`` parses them)."""
    path = Path(path)
    with path.open("rb") as f:
        raw = tomllib.load(f)
    missing = [key for key in ("name", "output_dir", "stages") if key not in raw]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}")
    if not isinstance(raw.get("tta", False), bool):
        raise ValueError(f"{path}: tta must be true or false, got {raw['tta']!r}")
    defaults = raw.get("defaults", {})
    stages, seen = [], set()
    for entry in raw["stages"]:
        entry = dict(entry)
        name = entry.pop("name", None)
        if not name or name in seen:
            raise ValueError(f"{path}: every stage needs a unique name (got {name!r})")
        if "output_dir" in entry:
            raise ValueError(f"{path}: stage {name} sets output_dir; stages run in OUTPUT_DIR/NAME")
        seen.add(name)
        stages.append(Stage(name, {**defaults, **entry}, Path(raw["output_dir"]) / name))
    return Recipe(path, raw["name"], raw.get("description", ""), stages, raw.get("base_model"), raw.get("tta"))


def recorded(args: argparse.Namespace) -> dict[str, Any]:
    """The options a stage folder is made from (what ``recipe.json`` holds)."""
    return {k: v for k, v in sorted(vars(args).items()) if k not in NOT_RECIPE}


def stage_command(recipe: Recipe, stage: Stage, overrides: list[str]) -> str:
    return shlex.join(["accelerate", "launch", "-m", "train.train", "--config", str(recipe.path), "--stage",
                       stage.name, *overrides])


def run_recipe(path: str | Path, overrides: list[str], parse: Callable[..., argparse.Namespace],
               train: Callable[[argparse.Namespace], float], only: str | None = None) -> None:
    """Run the recipe's stages in order (or ``only`` the named one), each skipped when finished, resumed when
    interrupted, refused when its folder holds a run of other options."""
    recipe = load_recipe(path)
    stages = [s for s in recipe.stages if only in (None, s.name)]
    if not stages:
        raise ValueError(f"{recipe.path} has no stage {only!r}; it has {[s.name for s in recipe.stages]}")
    for stage in stages:
        args = parse([*overrides, "--output-dir", str(stage.output_dir)], stage.values)
        wanted = recorded(args)
        saved = stage.output_dir / RECIPE_FILE
        if saved.exists():
            before = json.loads(saved.read_text())
            if before != wanted:
                changed = sorted(k for k in set(before) | set(wanted) if before.get(k) != wanted.get(k))
                raise ValueError(f"{stage.output_dir} was made from other options ({', '.join(changed)} differ): "
                                 "delete it or name another output_dir")
            if (stage.output_dir / FINISHED_FILE).exists():
                logger.info("stage %s is finished (%s): skipped", stage.name, stage.output_dir)
                continue
        stage.output_dir.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps(wanted, indent=2) + "\n")
        if any((stage.output_dir / "checkpoints").glob("checkpoint_*")):
            args.resume_from_checkpoint = "latest"
        args.recipe = {"file": str(recipe.path), "name": recipe.name, "stage": stage.name,
                       "command": stage_command(recipe, stage, overrides), "options": wanted}
        logger.info("stage %s of %s -> %s", stage.name, recipe.path, stage.output_dir)
        best_auc = train(args)
        (stage.output_dir / FINISHED_FILE).write_text(json.dumps({"best_val_auc": best_auc}) + "\n")
