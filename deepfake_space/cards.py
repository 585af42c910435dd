"""Model cards rendered from what a model folder holds: config.json, metrics.json and summary.csv.

The card is built only from files that travel with the weights, so it cannot claim numbers nobody measured:
without metrics.json it says plainly that the model has not been evaluated. ``save_pretrained`` never
overwrites a README, so ``write_model_card`` is how a folder's card is refreshed before it is published.
"""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any, Callable

from huggingface_hub import EvalResult, ModelCard, ModelCardData

from deepfake_space.card_tables import cross_domain_markdown, photo_robustness_markdown, robustness_markdown
from deepfake_space.config import DetectorConfig
from deepfake_space.runtime import ONNX_RECORD as ONNX_FILE

logger = logging.getLogger(__name__)

TEMPLATE_PATH = Path(__file__).resolve().parent / "templates" / "model_card.md"  # package data
DATASET_ID = "dfdc_faces"
DATASET_NAME = "DFDC face crops"
LICENSE_NAME = "dfdc-research-only"
METRICS_FILE = "metrics.json"
CROSS_DOMAIN_FILE = "cross_domain.json"
ROBUSTNESS_FILE = "robustness.json"
PHOTO_ROBUSTNESS_FILE = "photo_robustness.json"
TRAINING_LOG_FILE = "summary.csv"
EVAL_REQUIRED_KEYS = ("split", "n", "threshold", "metrics", "command")

# metrics.json key -> (label in the table, which way is better, model-index metric type or None to leave it
# out of the metadata). Accuracy and F1 depend on the threshold; the others do not.
METRICS: dict[str, tuple[str, str, str | None]] = {
    "roc_auc": ("ROC-AUC", "higher", "roc_auc"),
    "average_precision": ("Average precision", "higher", "average_precision"),
    "accuracy": ("Accuracy at the threshold", "higher", "accuracy"),
    "macro_f1": ("Macro-F1 at the threshold", "higher", "f1"),
    "eer": ("Equal error rate", "lower", "eer"),
    "log_loss": ("Log loss", "lower", None),
    "ece": ("Expected calibration error", "lower", None),
}


def _read_evaluation(folder: Path) -> dict[str, Any] | None:
    """metrics.json, checked for the fields the card quotes; None if the model was never evaluated."""
    path = folder / METRICS_FILE
    if not path.is_file():
        return None
    evaluation = json.loads(path.read_text())
    missing = [key for key in EVAL_REQUIRED_KEYS if key not in evaluation]
    if missing:
        raise ValueError(f"{path} lacks {', '.join(missing)}: re-run the evaluation command")
    return evaluation


def _read_json(folder: Path, name: str) -> dict[str, Any] | None:
    path = folder / name
    return json.loads(path.read_text()) if path.is_file() else None


def _read_training_log(folder: Path) -> dict[str, Any] | None:
    """The per-epoch summary.csv of the training run, when it was copied next to the weights."""
    path = folder / TRAINING_LOG_FILE
    if not path.is_file():
        return None
    with path.open(newline="") as f:
        reader = csv.reader(f)
        columns = next(reader, None)
        rows = [row for row in reader if row]
    return {"columns": columns, "rows": rows} if columns and rows else None


def _num_params(config: DetectorConfig, evaluation: dict[str, Any] | None) -> int:
    """Parameter count: measured by the evaluation if there was one, else counted on the architecture."""
    if evaluation is not None and "params" in evaluation:
        return int(evaluation["params"])
    # Imported here: building a network pulls in torch and timm, which publishing an evaluated model never needs.
    from deepfake_space.models import DeepfakeDetector

    return DeepfakeDetector(config).num_params()


def _metric_rows(metrics: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    return [{"label": label, "better": better, **metrics[key]}
            for key, (label, better, _) in METRICS.items() if key in metrics]


def _fake_cut_source(training: dict[str, Any], config: DetectorConfig) -> str | None:
    """Why the fake cut sits above threshold + band: the false-accusation cap on degraded real photos."""
    degraded = (training.get("threshold_picked_on") or {}).get("degraded_photos")
    if config.fake_above is None or not degraded:
        return None
    needed = degraded["fake_cut_needed"]
    worst = max(needed, key=needed.get)
    picked = training["threshold_picked_on"]
    return (f"raised from {config.threshold + config.uncertain_band:.3f} until at most "
            f"{100 * picked['max_false_fake']:.0f} % of the same photos' faces are called fake after each upload "
            f"degradation of the robustness suite (the highest cut, for `{worst}`); it costs "
            f"{100 * degraded['dfdc_cost_of_fake_cut']['fake_recall']:.1f} points of DFDC validation fake recall")


def _threshold_source(training: dict[str, Any]) -> str | None:
    """Where the shipped threshold came from: train.evaluate --pick-threshold, train.train, or nowhere."""
    picked = training.get("threshold_picked_on")
    if picked and "max_false_fake" in picked:
        capped = (f", then raised until at most {100 * picked['max_false_fake']:.0f} % of {picked['n_photos']} real "
                  f"photos ({picked['photos']}) are called fake" if picked["moved_by_cap"] else
                  f"; it already called at most {100 * picked['max_false_fake']:.0f} % of {picked['n_photos']} real "
                  f"photos ({picked['photos']}) fake")
        return f"maximised macro-F1 on the {picked['split']} split ({picked['n']:,} crops){capped}"
    if picked:
        return f"maximised macro-F1 on the {picked['split']} split ({picked['n']:,} crops of `{picked['data']}`)"
    if "command" in training:
        return "maximised macro-F1 on the validation split at the best epoch"
    return None


def _eval_results(evaluation: dict[str, Any], dataset_id: str) -> list[EvalResult]:
    """The model-index entries (threshold-free metrics plus accuracy/F1 at the shipped threshold)."""
    results = []
    for key, (label, _, metric_type) in METRICS.items():
        if metric_type is None or key not in evaluation["metrics"]:
            continue
        results.append(EvalResult(
            task_type="image-classification",
            task_name="Deepfake detection",
            dataset_type=dataset_id,
            dataset_name=DATASET_NAME,
            dataset_split=evaluation["split"],
            metric_type=metric_type,
            metric_name=label,
            metric_value=round(float(evaluation["metrics"][key]["value"]), 4),
            metric_args={"average": "macro"} if key == "macro_f1" else None,
        ))
    return results


def _teacher_repo(training: dict[str, Any]) -> str | None:
    """The teacher's Hub repo when training named it as ``org/name@revision`` (a folder path names no repo)."""
    teacher = training.get("teacher") or ""
    repo_id, at, _ = teacher.partition("@")
    return repo_id if at and repo_id.count("/") == 1 else None


def _earlier_cycles(training: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs a warm restart descends from, oldest first, each with the weights it started from (``init``):
    every restart nests the record of the run it started from under ``warm_start``."""
    chain, record = [], training
    while "warm_start" in record:
        parent = record["warm_start"]
        chain.append({**parent, "init": parent.get("warm_start", {}).get("from")})
        record = parent
    return chain[::-1]


def _cross_domain(folder: Path) -> tuple[str | None, str | None]:
    """cross_domain.json as Markdown, and the command that measured it."""
    report = _read_json(folder, CROSS_DOMAIN_FILE)
    return (cross_domain_markdown(report), report.get("command")) if report is not None else (None, None)


def _with_table(folder: Path, name: str, markdown: Callable[[dict], str]) -> dict[str, Any] | None:
    """A measurement's JSON next to the weights, with its Markdown table under ``table``; None if not measured."""
    result = _read_json(folder, name)
    return {**result, "table": markdown(result)} if result is not None else None


def _role(training: dict[str, Any]) -> str:
    """What the model is to the others: an average of trained networks, a distilled student, the labels-only control
    trained on a student's view bank, or (with no teacher at all) the teacher."""
    if training.get("members"):
        return f"the mean of {len(training['members'])} trained networks' logits"
    if training.get("teacher"):
        return "a distilled student"
    if training.get("view_bank_teacher"):
        return "a student trained on labels only, the control for the distilled students"
    return "the teacher"


def _self_blended(training: dict[str, Any]) -> bool:
    """Whether any training rows were self-blended fakes: drawn each epoch (``sbi``), or fixed in an extra split
    whose ``train.transfer_set`` record counts some (an extra split without a record is taken to have them)."""
    extra = training.get("extra_train_record") or {}
    return bool(training.get("sbi")) or (bool(training.get("extra_train")) and bool(extra.get("self_blends", True)))


def _members(training: dict[str, Any]) -> list[dict[str, Any]]:
    """An ensemble's members (``train.ensemble``), each with its own training command and whether it saw
    self-blended fakes; empty for a single network."""
    return [{**m, "command": m["training"].get("command"), "self_blended": _self_blended(m["training"])}
            for m in training.get("members", [])]


def render_model_card(
    folder: Path,
    *,
    repo_id: str | None = None,
    base_model: str | None = None,
    extra: dict[str, Any] | None = None,
    dataset_id: str = DATASET_ID,
) -> ModelCard:
    """The model card of a released model folder (config.json + model.safetensors [+ metrics.json, summary.csv]).

    ``base_model`` is the Hub repo the weights derive from (a student's teacher); when it is not given, the
    teacher is taken from config.json only if it was named as ``org/name@revision``, since a folder path
    names no repo. ``extra`` adds or overrides template variables (the template uses ``space_url`` and ``notes``).
    """
    folder = Path(folder)
    weights_path = folder / "model.safetensors"
    if not weights_path.is_file():
        raise FileNotFoundError(f"{folder} has no {weights_path.name}: not a released model folder")
    config = DetectorConfig.from_folder(folder)
    training = config.training
    is_student = bool(training.get("teacher"))
    base_model = base_model or _teacher_repo(training)
    if is_student and base_model is None:
        logger.warning("%s is a student of %r, which is no Hub repo: pass base_model to link the teacher",
                       folder, training["teacher"])
    evaluation = _read_evaluation(folder)
    eval_results = _eval_results(evaluation, dataset_id) if evaluation else None
    threshold_mismatch = evaluation is not None and abs(evaluation["threshold"] - config.threshold) > 1e-9
    if threshold_mismatch:
        logger.warning("%s: metrics.json was measured at threshold %s but config.json ships %s: re-evaluate",
                       folder, evaluation["threshold"], config.threshold)
    model_id = repo_id or folder.name
    cross_domain, cross_domain_command = _cross_domain(folder)
    members = _members(training)

    tags = ["deepfake-detection", "dfdc", "image-classification", "pytorch", config.arch]
    if is_student:
        tags.append("knowledge-distillation")
    card_data = ModelCardData(
        license="other",
        license_name=LICENSE_NAME,
        library_name="deepfake_space",
        pipeline_tag="image-classification",
        tags=tags,
        datasets=[dataset_id],
        base_model=base_model,
        model_name=model_id if eval_results else None,  # the model-index needs it; alone it is no card field
        metrics=[result.metric_type for result in eval_results] if eval_results else None,
        eval_results=eval_results,
    )
    context: dict[str, Any] = {
        "model_id": model_id,
        "load_spec": repo_id or f"models/{folder.name}",
        "role": _role(training),
        "self_blended": _self_blended(training) or any(m["self_blended"] for m in members),
        "photo_trained": bool(training.get("extra_train")) or any(m["training"].get("extra_train") for m in members),
        "members": members,
        "is_student": is_student,
        "base_model": base_model,
        "cfg": config,
        "training": training,
        "trained": "command" in training,
        "earlier_cycles": _earlier_cycles(training),
        "threshold_source": _threshold_source(training),
        "fake_cut_source": _fake_cut_source(training, config),
        "threshold_mismatch": threshold_mismatch,
        "training_log": _read_training_log(folder),
        "params": _num_params(config, evaluation),
        "file_size_mib": weights_path.stat().st_size / 2**20,
        "evaluation": evaluation,
        "metrics": _metric_rows(evaluation["metrics"]) if evaluation else [],
        "video_metrics": _metric_rows(evaluation.get("video_metrics", {})) if evaluation else [],
        "cross_domain": cross_domain,
        "cross_domain_command": cross_domain_command,
        "robustness": _with_table(folder, ROBUSTNESS_FILE, robustness_markdown),
        "photo_robustness": _with_table(folder, PHOTO_ROBUSTNESS_FILE, photo_robustness_markdown),
        "onnx": _read_json(folder, ONNX_FILE),
        "space_url": None,
        "notes": None,
        **(extra or {}),
    }
    return ModelCard.from_template(card_data, template_path=str(TEMPLATE_PATH), **context)


def write_model_card(folder: Path, **kwargs: Any) -> Path:
    """Render the card and save it as the folder's README.md, replacing any older one."""
    path = Path(folder) / "README.md"
    render_model_card(Path(folder), **kwargs).save(path)
    logger.info("wrote the model card %s", path)
    return path
