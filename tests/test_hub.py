"""Model cards, publishing to a loopback fake Hub, and pulling through a real Hub mirror (olah), on 127.0.0.1 only.

huggingface_hub reads HF_ENDPOINT when it is imported, so everything that talks to a server runs in a
subprocess with HF_ENDPOINT, HF_TOKEN and a fresh HF_HOME set, exactly as a user would run it.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from deepfake_space.cards import render_model_card, write_model_card
from deepfake_space.models import DeepfakeDetector
from hub_server import FakeHub
from processes import stop_process

REPO_ROOT = Path(__file__).resolve().parents[1]
TOKEN = "dummy"
COLLECTION = "DFDC deepfake detectors"
METRIC_VALUES = {"roc_auc": 0.912, "accuracy": 0.834, "macro_f1": 0.829, "average_precision": 0.931,
                 "eer": 0.161, "log_loss": 0.402, "ece": 0.031}
STUDENT_TRAINING = {"command": "accelerate launch -m train.train --model resnet8 --teacher models/teacher",
                    "data": "../shared/data/dfdc_faces", "epoch": 3, "val_auc": 0.9, "teacher": "models/teacher",
                    "kd": "kl", "alpha": 0.5, "temperature": 4.0}


def _save_model(folder: Path, seed: int, evaluated: bool = True, **overrides) -> DeepfakeDetector:
    """An untrained resnet8 saved in release layout, with a made-up metrics.json when ``evaluated``."""
    torch.manual_seed(seed)
    model = DeepfakeDetector.create("resnet8", **overrides).eval()
    model.save_pretrained(folder, config=model.config)
    if evaluated:
        metrics = {k: {"value": v, "ci_low": v - 0.01, "ci_high": v + 0.01} for k, v in METRIC_VALUES.items()}
        (folder / "metrics.json").write_text(json.dumps({
            "model": str(folder), "data": "../shared/data/dfdc_faces", "split": "validation", "n": 3531,
            "threshold": model.config.threshold, "metrics": metrics, "latency_ms_per_image": 3.1,
            "params": model.num_params(), "file_size_mb": 0.7,
            "command": f"python -m train.evaluate --model {folder} --split validation"}))
    return model


@pytest.fixture(scope="module")
def folders(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("hub_models")
    _save_model(root / "teacher", seed=0)
    _save_model(root / "student", seed=1, threshold=0.42, training=STUDENT_TRAINING)
    (root / "student" / "summary.csv").write_text("epoch,step,train_loss,val_auc\n0,100,0.61,0.81\n1,200,0.52,0.90\n")
    (root / "student" / "scratch.pt").write_bytes(b"not a release file")  # must never be uploaded
    return {"teacher": root / "teacher", "student": root / "student"}


def _hub_env(endpoint: str, hf_home: Path, token: str = TOKEN) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    return env | {"HF_ENDPOINT": endpoint, "HF_TOKEN": token, "HF_HOME": str(hf_home),
                  "NO_PROXY": "127.0.0.1,localhost", "OMP_NUM_THREADS": "1"}


def _publish(hub: FakeHub, hf_home: Path, *args: str, token: str = TOKEN) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "train.publish", *args], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60, env=_hub_env(hub.url, hf_home, token))


@pytest.fixture()
def hub(tmp_path):
    with FakeHub(tmp_path / "hub", token=TOKEN) as server:
        yield server


# -- model cards (no server) ------------------------------------------------------------------------------


def test_card_without_metrics_says_not_evaluated(tmp_path):
    _save_model(tmp_path / "plain", seed=0, evaluated=False)
    card = render_model_card(tmp_path / "plain", repo_id="acme/plain")
    assert card.data.license == "other" and card.data.license_name == "dfdc-research-only"
    assert card.data.eval_results is None and "model-index" not in card.data.to_dict()
    assert "has not been evaluated" in card.text and "| ROC-AUC |" not in card.text
    assert "research use only" in card.text
    assert "knowledge-distillation" not in card.data.tags and card.data.base_model is None


def test_card_of_student_takes_teacher_from_hub_spec(tmp_path):
    training = STUDENT_TRAINING | {"teacher": "acme/teacher@v2"}
    _save_model(tmp_path / "kd", seed=1, threshold=0.42, training=training)
    card = render_model_card(tmp_path / "kd", repo_id="acme/kd", extra={"space_url": "/spaces/acme/demo"})
    assert card.data.base_model == "acme/teacher" and "[demo Space](/spaces/acme/demo)" in card.text
    assert "knowledge-distillation" in card.data.tags
    assert "| ROC-AUC | 0.9120 | [0.9020, 0.9220] | higher |" in card.text
    assert "threshold | 0.420" in card.text and training["command"] in card.text
    assert "python -m train.evaluate" in card.text and "3.1 ms per face crop" in card.text


def test_card_names_each_role_and_what_the_extra_rows_were(tmp_path):
    """A distilled student, its labels-only control on the same view bank, and a teacher; a transfer set of photo
    faces only is not called self-blended."""
    photos_only = {"extra_train": "cache/transfer_photos", "extra_repeat": 4,
                   "extra_train_record": {"self_blends": None, "photo_faces": {"photos": 150, "cropped": 150}}}
    control = {k: v for k, v in STUDENT_TRAINING.items() if k not in ("teacher", "kd", "alpha", "temperature")}
    _save_model(tmp_path / "kd", seed=1, training=STUDENT_TRAINING | photos_only)
    _save_model(tmp_path / "scratch", seed=2, training=control | photos_only | {"view_bank_teacher": "models/teacher"})
    _save_model(tmp_path / "teacher", seed=3, training=STUDENT_TRAINING | {"teacher": None, "kd": None})
    kd, scratch, teacher = (render_model_card(tmp_path / name).text for name in ("kd", "scratch", "teacher"))
    assert "project (a distilled student)" in kd and "project (the teacher)" in teacher
    assert "project (a student trained on labels only, the control" in scratch
    assert "labels-only control" in scratch and "the teacher's logits were not used" in scratch
    for text in (kd, scratch):
        assert "each seen 4\ntimes per epoch" in text and "the faces of\n150 real FFHQ photos" in text
        assert "self-blended" not in text
    assert "scored by the teacher like every other crop" in kd and "scored by the teacher" not in scratch


def test_card_follows_train_evaluate_extras(tmp_path):
    """A threshold picked by ``train.evaluate --pick-threshold``, per-video metrics, and a stale metrics.json."""
    folder = tmp_path / "m"
    _save_model(folder, seed=0, threshold=0.37,
                training={"threshold_picked_on": {"data": "dfdc", "split": "validation", "n": 3531, "tta": False}})
    evaluation = json.loads((folder / "metrics.json").read_text())
    evaluation |= {"threshold": 0.5, "group_by": "original", "n_groups": 410,
                   "video_metrics": {"roc_auc": {"value": 0.95, "ci_low": 0.93, "ci_high": 0.97}}}
    (folder / "metrics.json").write_text(json.dumps(evaluation))
    text = render_model_card(folder).text
    assert "holds no training record" in text  # only the threshold was picked, nobody trained it here
    assert "the cut that maximised macro-F1 on the validation split (3,531 crops of `dfdc`)" in text
    assert "Pooled per `original` (410 groups" in text and "| ROC-AUC | 0.9500 | [0.9300, 0.9700] |" in text
    assert "measured at the threshold 0.5, but `config.json` ships\n0.37" in text


def test_card_refuses_an_incomplete_metrics_file(tmp_path):
    _save_model(tmp_path / "m", seed=0)
    (tmp_path / "m" / "metrics.json").write_text(json.dumps({"metrics": {}}))
    with pytest.raises(ValueError, match="lacks split, n, threshold, command"):
        render_model_card(tmp_path / "m")


def test_write_model_card_replaces_the_mixin_readme(tmp_path):
    _save_model(tmp_path / "m", seed=0)
    assert "dfdc-research-only" not in (tmp_path / "m" / "README.md").read_text()  # save_pretrained's own card
    path = write_model_card(tmp_path / "m", repo_id="acme/m")
    assert path == tmp_path / "m" / "README.md"
    assert "dfdc-research-only" in path.read_text() and "# acme/m" in path.read_text()


# -- publishing to the fake Hub ---------------------------------------------------------------------------


def _card(hub: FakeHub, repo_id: str, revision: str, tmp_path: Path) -> ModelCard:
    path = tmp_path / f"{repo_id.replace('/', '--')}-{revision}.md"
    path.write_bytes(hub.files(repo_id, revision)["README.md"])
    return ModelCard.load(path)


def test_publish_teacher_and_student(hub, folders, tmp_path):
    hf_home = tmp_path / "hf_home"
    teacher = _publish(hub, hf_home, "--model", str(folders["teacher"]), "--repo-id", "acme/teacher",
                       "--collection", COLLECTION)
    assert teacher.returncode == 0, teacher.stderr
    assert teacher.stdout.strip() == f"{hub.url}/acme/teacher/commit/{hub.state.heads['acme/teacher']['main']}"
    student = _publish(hub, hf_home, "--model", str(folders["student"]), "--repo-id", "acme/student",
                       "--revision", "v1", "--base-model", "acme/teacher", "--collection", COLLECTION,
                       "--commit-message", "Student v1")
    assert student.returncode == 0, student.stderr

    stored = hub.files("acme/teacher")
    assert sorted(stored) == ["README.md", "config.json", "metrics.json", "model.safetensors"]
    for name in ("config.json", "metrics.json", "model.safetensors"):
        assert stored[name] == (folders["teacher"] / name).read_bytes(), name
    card = _card(hub, "acme/teacher", "main", tmp_path)
    assert (card.data.license, card.data.license_name) == ("other", "dfdc-research-only")
    assert card.data.library_name == "deepfake_space" and card.data.pipeline_tag == "image-classification"
    assert {"deepfake-detection", "dfdc"} <= set(card.data.tags) and "knowledge-distillation" not in card.data.tags
    results = {r.metric_type: r for r in card.data.eval_results}
    assert sorted(results) == ["accuracy", "average_precision", "eer", "f1", "roc_auc"]
    assert results["roc_auc"].metric_value == METRIC_VALUES["roc_auc"]
    assert results["f1"].metric_args == {"average": "macro"} and results["roc_auc"].dataset_split == "validation"
    assert "research use only" in card.text

    assert hub.files("acme/student", "main") == {}  # the student went to its branch only
    stored = hub.files("acme/student", "v1")
    assert sorted(stored) == ["README.md", "config.json", "metrics.json", "model.safetensors", "summary.csv"]
    assert stored["model.safetensors"] == (folders["student"] / "model.safetensors").read_bytes()
    card = _card(hub, "acme/student", "v1", tmp_path)
    assert card.data.base_model == "acme/teacher" and "knowledge-distillation" in card.data.tags
    assert hub.state.commits[-1]["summary"] == "Student v1"

    (collection,) = hub.state.collections.values()
    assert collection["title"] == COLLECTION and collection["owner"]["name"] == "acme"
    assert [item["id"] for item in collection["items"]] == ["acme/teacher", "acme/student"]

    again = _publish(hub, hf_home, "--model", str(folders["teacher"]), "--repo-id", "acme/teacher",
                     "--collection", COLLECTION)  # repo, collection and item exist already: no error
    assert again.returncode == 0, again.stderr
    assert len(hub.state.collections) == 1 and len(collection["items"]) == 2


def test_publish_fails_clearly(hub, folders, tmp_path):
    hf_home = tmp_path / "hf_home"
    missing = _publish(hub, hf_home, "--model", str(tmp_path / "nope"), "--repo-id", "acme/x")
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    (tmp_path / "half").mkdir()
    shutil.copy(folders["teacher"] / "config.json", tmp_path / "half")
    half = _publish(hub, hf_home, "--model", str(tmp_path / "half"), "--repo-id", "acme/x")
    assert half.returncode == 1 and "has no model.safetensors" in half.stderr
    shutil.copy(folders["teacher"] / "model.safetensors", tmp_path / "half")
    (tmp_path / "half" / "metrics.json").write_text("{}")
    bad_metrics = _publish(hub, hf_home, "--model", str(tmp_path / "half"), "--repo-id", "acme/x")
    assert bad_metrics.returncode == 1 and "cannot write the model card" in bad_metrics.stderr
    denied = _publish(hub, hf_home, "--model", str(folders["teacher"]), "--repo-id", "acme/x", token="wrong")
    assert denied.returncode == 1 and "check HF_TOKEN" in denied.stderr
    for result in (missing, half, bad_metrics, denied):
        assert "Traceback" not in result.stderr
    assert hub.state.heads == {}


# -- pulling through the olah mirror ----------------------------------------------------------------------

GIT_ENV = {"GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "test",
           "GIT_AUTHOR_EMAIL": "test@example.com", "GIT_COMMITTER_NAME": "test",
           "GIT_COMMITTER_EMAIL": "test@example.com", "GIT_AUTHOR_DATE": "2024-01-01T00:00:00Z",
           "GIT_COMMITTER_DATE": "2024-01-01T00:00:00Z"}


def _git_repo_like_a_hub_clone(src: Path, repo: Path) -> None:
    """A git repo of the model folder as ``git clone`` of a Hub repo leaves it: the weights as a git-lfs
    pointer, their bytes under .git/lfs/objects. Written by hand, so the git-lfs binary is not needed."""
    shutil.copytree(src, repo)
    env = os.environ | GIT_ENV
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True, env=env)
    weights = repo / "model.safetensors"
    data = weights.read_bytes()
    oid = hashlib.sha256(data).hexdigest()
    lfs_object = repo / ".git" / "lfs" / "objects" / oid[:2] / oid[2:4] / oid
    lfs_object.parent.mkdir(parents=True)
    lfs_object.write_bytes(data)
    weights.write_text(f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(data)}\n")
    subprocess.run(["git", "add", "-A"], cwd=repo, check=True, env=env)
    subprocess.run(["git", "commit", "-q", "-m", "Release"], cwd=repo, check=True, env=env)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture()
def olah_mirror(folders, tmp_path):
    """olah in offline mode on 127.0.0.1, serving acme/teacher from a local git repo (its "mirrors-path")."""
    if shutil.which("git") is None:
        pytest.skip("git is needed to build the mirrored repo")
    write_model_card(folders["teacher"], repo_id="acme/teacher")
    _git_repo_like_a_hub_clone(folders["teacher"], tmp_path / "mirrors" / "models" / "acme" / "teacher")
    port = _free_port()
    config = tmp_path / "olah.toml"
    config.write_text(f'[basic]\nhost = "127.0.0.1"\nport = {port}\nrepos-path = "{tmp_path / "olah_cache"}"\n'
                      f'mirrors-path = ["{tmp_path / "mirrors"}"]\n\n[accessibility]\noffline = true\n')
    log = (tmp_path / "olah.out").open("w")
    proc = subprocess.Popen([sys.executable, "-m", "olah.server", "-c", str(config), "--log-path",
                             str(tmp_path / "olah_logs")], stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"{url}/api/models/acme/teacher/revision/main", timeout=2):
                    break
            except (urllib.error.URLError, ConnectionError):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"olah did not start:\n{(tmp_path / 'olah.out').read_text()}")
                time.sleep(0.2)
        yield url
    finally:
        stop_process(proc, timeout=10)
        log.close()


PULL_SCRIPT = """
import sys, torch
from deepfake_space.errors import ModelLoadError
from deepfake_space.models import load_detector
spec, missing, inputs, out = sys.argv[1:]
torch.set_num_threads(1)
with torch.no_grad():
    logits = load_detector(spec)(torch.load(inputs))
try:
    load_detector(missing)
    error = None
except ModelLoadError as e:
    error = str(e)
torch.save({"logits": logits, "error": error}, out)
"""


def test_pull_through_olah_mirror_gives_identical_logits(olah_mirror, folders, tmp_path):
    x = torch.randn(2, 3, 160, 160, generator=torch.Generator().manual_seed(0))
    torch.save(x, tmp_path / "inputs.pt")
    hf_home = tmp_path / "hf_home"
    result = subprocess.run(
        [sys.executable, "-c", PULL_SCRIPT, "acme/teacher@main", "acme/missing@main", str(tmp_path / "inputs.pt"),
         str(tmp_path / "out.pt")],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=120, env=_hub_env(olah_mirror, hf_home))
    assert result.returncode == 0, result.stderr
    out = torch.load(tmp_path / "out.pt")

    (snapshot,) = (hf_home / "hub" / "models--acme--teacher" / "snapshots").iterdir()
    assert (snapshot / "model.safetensors").read_bytes() == (folders["teacher"] / "model.safetensors").read_bytes()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the same kernels as in the subprocess, so the logits can match bit for bit
    try:
        with torch.no_grad():
            expected = DeepfakeDetector.from_pretrained(str(folders["teacher"]))(x)
    finally:
        torch.set_num_threads(threads)
    assert torch.equal(out["logits"], expected)

    assert out["error"] is not None, "a missing repo must raise ModelLoadError, not fall back"
    assert "acme/missing@main" in out["error"] and "Repository Not Found" in out["error"]


def test_card_of_a_chain_of_warm_restarts_lists_every_cycle_and_command(tmp_path):
    first = "accelerate launch -m train.train --model resnet8 --epochs 28 --output-dir runs/first"
    second = first.replace("runs/first", "runs/second") + " --init runs/first/best"
    third = STUDENT_TRAINING["command"] + " --init runs/second/best --teacher-views 2"
    training = STUDENT_TRAINING | {
        "command": third, "teacher_views": 2, "teacher_weights": "2222222222222222",
        "warm_start": {"from": "runs/second/best", "epoch": 20, "val_auc": 0.901, "command": second,
                       "teacher_weights": "1111111111111111",
                       "warm_start": {"from": "runs/first/best", "epoch": 27, "val_auc": 0.878, "command": first}}}
    _save_model(tmp_path / "kd", seed=1, training=training)
    text = render_model_card(tmp_path / "kd").text
    assert "| 1 | its command's `--init` | not recorded | 27 | 0.878 |" in text
    assert "| 2 | `runs/first/best` | `1111111111111111` | 20 | 0.901 |" in text
    assert f"| 3 | `runs/second/best` | `2222222222222222` | {training['epoch']} | {training['val_auc']} |" in text
    assert "`models/teacher` (weights\nBLAKE2b-64 `2222222222222222`)" in text
    assert text.index(first) < text.index(second) < text.index(third)
    assert "trained on 2 fixed\naugmented views" in text
