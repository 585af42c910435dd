"""``deepfake-space batch``: one CSV row per input file, resumable, pipelined, and data-parallel across processes.

Within a process, a thread decodes and finds the faces of the next files (``Detector.prepare``) while the models
score the current one (``Detector.score``), through a bounded queue, so the CPU is never idle waiting on either.
Across processes and machines, ``accelerate launch --multi_gpu --num_processes N -m deepfake_space batch ...``
(torchrun underneath; on CPUs too, where the ranks talk over gloo) gives each rank every
``num_processes``-th file still to do; each appends its rows to its own part file, and rank 0 merges the parts
into the one CSV when every rank is done. Rows already in the CSV or in a part left by an interrupted run are
not redone. A file that fails gets an "error" row with the reason, never a verdict.
"""

from __future__ import annotations

import csv
import logging
import os
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from tqdm.auto import tqdm

from deepfake_space.detector import Analysis, Detector
from deepfake_space.errors import DeepfakeSpaceError
from deepfake_space.media import MEDIA_SUFFIXES
from deepfake_space.report import STATUS_ERROR, Report

logger = logging.getLogger(__name__)

PREFETCH = 2  # files prepared ahead of the one being scored: enough to hide a slow decode, little memory


def list_inputs(source: Path) -> list[Path]:
    """A folder (media files, recursively) or a CSV with a ``path`` (or ``filename``) column."""
    if source.is_dir():
        return sorted(p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in MEDIA_SUFFIXES)
    if source.is_file() and source.suffix.lower() == ".csv":
        with source.open(newline="") as f:
            reader = csv.DictReader(f)
            column = next((c for c in ("path", "filename", "file") if c in (reader.fieldnames or [])), None)
            if column is None:
                raise DeepfakeSpaceError(f"{source} needs a 'path' or 'filename' column")
            return [(source.parent / row[column]).resolve() if not Path(row[column]).is_absolute()
                    else Path(row[column]) for row in reader]
    raise DeepfakeSpaceError(f"{source} is neither a folder nor a .csv file")


def batch_row(path: Path, report: Report, model_names: Iterable[str]) -> dict[str, str]:
    row = {"filename": str(path), "status": report.status, "faces_found": str(report.faces_found),
           "detector": ",".join(report.detectors_used), "message": report.message}
    for name in model_names:
        m = next((m for m in report.models if m.name == name), None)
        row[f"{name}_p_fake"] = "" if m is None or m.p_fake is None else f"{m.p_fake:.5f}"
        row[f"{name}_verdict"] = "" if m is None or report.status == STATUS_ERROR else m.verdict
    return row


def _guarded(step: Callable[[], Analysis], path: Path) -> Analysis:
    """One bad file never stops the run: an unexpected failure becomes its error row."""
    try:
        return step()
    except Exception as e:  # noqa: BLE001 - recorded in the row, never guessed
        logger.exception("unexpected failure on %s", path)
        return Analysis(Report(file=path.name, status=STATUS_ERROR, message=f"unexpected error: {e}"))


def iter_analyses(detector: Detector, paths: list[Path], whole_image: bool = False,
                  prefetch: int = PREFETCH) -> Iterator[tuple[Path, Analysis]]:
    """(path, analysis) in order, preparing up to ``prefetch`` files ahead in a thread (0: one after another)."""
    if prefetch <= 0:
        for path in paths:
            yield path, _guarded(lambda: detector.analyze(path, whole_image=whole_image), path)
        return
    prepared: queue.Queue = queue.Queue(maxsize=prefetch)
    stop = threading.Event()

    def produce() -> None:
        for path in paths:
            if stop.is_set():
                return
            prepared.put((path, _guarded(lambda: detector.prepare(path, whole_image=whole_image), path)))
        prepared.put(None)

    worker = threading.Thread(target=produce, name="batch-prepare", daemon=True)
    worker.start()
    try:
        while (item := prepared.get()) is not None:
            path, analysis = item
            yield path, _guarded(lambda: detector.score(analysis), path)
    finally:
        stop.set()
        while worker.is_alive():  # unblock a producer waiting on a full queue
            try:
                prepared.get_nowait()
            except queue.Empty:
                worker.join(0.05)


@dataclass(frozen=True)
class Shard:
    """This process's share of the inputs: every ``count``-th file from ``index``."""

    index: int = 0
    count: int = 1

    @classmethod
    def from_launcher(cls) -> tuple["Shard", Callable[[], None]]:
        """The shard ``accelerate launch`` gave this process, and a barrier over all of them (no-op alone)."""
        if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
            return cls(), lambda: None
        try:
            from accelerate import PartialState
        except ImportError as e:
            raise DeepfakeSpaceError("several batch processes need accelerate (requirements-train.txt)") from e
        import torch

        state = PartialState(cpu=not torch.cuda.is_available())
        return cls(state.process_index, state.num_processes), state.wait_for_everyone

    def part(self, out: Path) -> Path:
        return out if self.count == 1 else out.with_name(f"{out.stem}.part{self.index}-of-{self.count}{out.suffix}")


def _read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def _parts(out: Path) -> list[Path]:
    return sorted(out.parent.glob(f"{out.stem}.part*-of-*{out.suffix}"))


def merge_parts(out: Path, fields: list[str]) -> None:
    """Fold every part file into ``out`` (rows of files already there are kept once), then remove the parts."""
    parts = _parts(out)
    if not parts:
        return
    rows = {r["filename"]: r for r in (_read_rows(out) if out.exists() else [])}
    for part in parts:
        for row in _read_rows(part):
            rows.setdefault(row["filename"], row)
    tmp = out.with_name(f".{out.name}.merging")
    with tmp.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows.values())
    os.replace(tmp, out)
    for part in parts:
        part.unlink()


@dataclass
class BatchResult:
    written: int
    skipped: int
    seconds: float

    @property
    def files_per_s(self) -> float:
        return self.written / self.seconds if self.seconds > 0 else 0.0


def run_batch(detector: Detector, inputs: list[Path], out: Path, whole_image: bool = False,
              prefetch: int = PREFETCH, shard: Shard = Shard(), barrier: Callable[[], None] = lambda: None,
              progress: bool = True) -> BatchResult:
    """Score this shard's share of the ``inputs`` not yet in ``out`` (or its parts); rank 0 merges at the end."""
    names = [m.name for m in detector.models]
    fields = list(batch_row(Path(), Report(file=""), names))
    done = {r["filename"] for path in ([out] if out.exists() else []) + _parts(out) for r in _read_rows(path)}
    todo = [p for p in inputs if str(p) not in done][shard.index::shard.count]
    logger.info("%d inputs, %d already done, %d for shard %d of %d", len(inputs), len(done), len(todo),
                shard.index, shard.count)
    barrier()  # every rank has read what was done before any writes its part
    part = shard.part(out)
    start = time.perf_counter()
    with part.open("a", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        if f.tell() == 0:
            writer.writeheader()
        analyses = iter_analyses(detector, todo, whole_image, prefetch)
        for path, analysis in tqdm(analyses, total=len(todo), desc=f"batch {shard.index}", disable=not progress):
            writer.writerow(batch_row(path, analysis.report, names))
            f.flush()
    seconds = time.perf_counter() - start
    barrier()
    if shard.index == 0:
        merge_parts(out, fields)
    return BatchResult(len(todo), len(done), seconds)
