"""Publish a released model folder to the Hugging Face Hub, with a model card rendered from its own files.

    python -m train.publish --model models/student-kd --repo-id ORG/deepfake-student-kd \
        --base-model ORG/deepfake-teacher --collection "DFDC deepfake detectors"

The card is re-rendered first (``save_pretrained`` never replaces a README), then only the release files
are uploaded: config.json, model.safetensors, the ONNX exports (``train.export_onnx``, written by ``train.release``),
README.md, the measurement records (*.json) and the training logs (*.csv), so
checkpoints or scratch files in the folder never reach the Hub. ``HF_ENDPOINT`` and ``HF_TOKEN`` are
honoured by huggingface_hub.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from huggingface_hub import CommitInfo, HfApi
from huggingface_hub.errors import HfHubHTTPError

from deepfake_space.cards import write_model_card
from deepfake_space.errors import DeepfakeSpaceError

logger = logging.getLogger("train.publish")

REQUIRED_FILES = ("config.json", "model.safetensors")
UPLOAD_PATTERNS = ["*.json", "model.safetensors", "*.onnx", "README.md", "*.csv"]


class PublishError(DeepfakeSpaceError):
    """The folder cannot be published as it is (missing, or not a released model)."""


def check_model_folder(folder: Path) -> None:
    """Fail before any Hub call if the folder is not a released model."""
    if not folder.is_dir():
        raise PublishError(f"model folder {str(folder)!r} does not exist")
    missing = [name for name in REQUIRED_FILES if not (folder / name).is_file()]
    if missing:
        raise PublishError(f"{folder} has no {', '.join(missing)}: save the model with save_pretrained first")
    if not (folder / "metrics.json").is_file():
        logger.warning("%s has no metrics.json: the card will say the model has not been evaluated", folder)


def publish(
    folder: Path,
    repo_id: str,
    *,
    revision: str | None = None,
    private: bool | None = None,
    base_model: str | None = None,
    collection: str | None = None,
    commit_message: str | None = None,
    endpoint: str | None = None,
    token: str | None = None,
) -> CommitInfo:
    """Write the card, create the repo (and branch), upload the release files, optionally add to a Collection."""
    folder = Path(folder)
    check_model_folder(folder)
    try:
        write_model_card(folder, repo_id=repo_id, base_model=base_model)
    except (ValueError, TypeError) as e:  # a malformed config.json or metrics.json
        raise PublishError(f"cannot write the model card of {folder}: {e}") from e

    api = HfApi(endpoint=endpoint, token=token)
    repo_url = api.create_repo(repo_id, private=private, exist_ok=True)
    logger.info("repo %s", repo_url)
    if revision is not None:
        api.create_branch(repo_id, branch=revision, exist_ok=True)
    commit = api.upload_folder(
        repo_id=repo_id,
        folder_path=folder,
        revision=revision,
        allow_patterns=UPLOAD_PATTERNS,
        commit_message=commit_message or f"Publish {folder.name} with its model card",
    )
    if collection is not None:
        namespace = repo_id.split("/")[0]
        slug = api.create_collection(title=collection, namespace=namespace, private=bool(private),
                                     exists_ok=True).slug
        added = api.add_collection_item(slug, item_id=repo_id, item_type="model", exists_ok=True)
        logger.info("collection %s holds %d item(s)", added.url, len(added.items))
    return commit


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, type=Path, help="released model folder (config.json + model.safetensors)")
    p.add_argument("--repo-id", required=True, help="ORG/NAME on the Hub")
    p.add_argument("--revision", help="branch to push to (created from main if missing); default: main")
    p.add_argument("--private", action="store_true", default=None,
                   help="create the repo (and collection) private; default: the namespace's default visibility")
    p.add_argument("--base-model", help="teacher repo ORG/TEACHER, for a distilled student's card")
    p.add_argument("--collection", help="title of a Collection in ORG to add the repo to (created if missing)")
    p.add_argument("--commit-message")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=os.environ.get("LOGLEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    try:
        commit = publish(args.model, args.repo_id, revision=args.revision, private=args.private,
                         base_model=args.base_model, collection=args.collection,
                         commit_message=args.commit_message)
    except PublishError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except HfHubHTTPError as e:
        denied = e.response.status_code in (401, 403)
        hint = " (check HF_TOKEN and your write access to the namespace)" if denied else ""
        print(f"error: the Hub refused the request{hint}: {e}", file=sys.stderr)
        return 1
    print(commit.commit_url)
    return 0


if __name__ == "__main__":
    sys.exit(main())
