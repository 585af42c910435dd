"""A loopback fake of the Hugging Face Hub API: just the endpoints huggingface_hub calls to publish a model.

Committed files are written to ``ROOT/ORG/NAME/BRANCH/PATH`` so a test can compare them byte for byte
with what it published. The preupload endpoint answers ``uploadMode: regular`` for every file, so the
client sends all contents inline (base64 in the NDJSON commit) and never needs the LFS batch API or Xet
storage, neither of which exists here. Everything binds to 127.0.0.1 only.

    with FakeHub(tmp_path / "hub", token="dummy") as hub:
        ...  # run huggingface_hub with HF_ENDPOINT=hub.url, HF_TOKEN=dummy
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import shutil
import socket
import threading
import time
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import uvicorn
import yaml
from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

BAD_TOKEN_MESSAGE = "Invalid credentials in Authorization header"  # the Hub's wording, which huggingface_hub checks


class HubError(Exception):
    """An error answer in the Hub's shape: JSON body plus the X-Error-Code / X-Error-Message headers."""

    def __init__(self, status: int, message: str, code: str | None = None, **body: Any) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.body = status, message, code, body

    def response(self) -> JSONResponse:
        headers = {"X-Error-Message": self.message} | ({"X-Error-Code": self.code} if self.code else {})
        return JSONResponse({"error": self.message, **self.body}, status_code=self.status, headers=headers)


class HubState:
    """Repos (branch -> head commit), commits and collections; file contents live on disk under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.heads: dict[str, dict[str, str]] = {}  # repo_id -> branch -> commit oid
        self.private: dict[str, bool] = {}
        self.commits: list[dict[str, Any]] = []
        self.collections: dict[str, dict[str, Any]] = {}
        self._ids = itertools.count(1)

    def new_id(self, n_hex: int = 40) -> str:
        return hashlib.sha1(str(next(self._ids)).encode()).hexdigest()[:n_hex]

    def branch_dir(self, repo_id: str, branch: str) -> Path:
        return self.root / repo_id / branch

    def require_branch(self, repo_id: str, branch: str) -> None:
        if repo_id not in self.heads:
            raise HubError(404, "Repository not found", "RepoNotFound")
        if branch not in self.heads[repo_id]:
            raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")

    def collection_json(self, slug: str) -> dict[str, Any]:
        return self.collections[slug] | {"lastUpdated": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}


def _safe_path(path: str) -> PurePosixPath:
    """A repo path that stays inside the repo folder."""
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or not pure.parts:
        raise HubError(400, f"invalid path in repo: {path!r}")
    return pure


def create_app(root: Path, token: str) -> FastAPI:
    """The FastAPI app; ``app.state.hub`` is the ``HubState`` for assertions."""
    state = HubState(root)
    app = FastAPI()
    app.state.hub = state

    @app.exception_handler(HubError)
    async def hub_error(_: Request, exc: HubError) -> JSONResponse:
        return exc.response()

    def authorized(request: Request) -> None:
        if request.headers.get("authorization") != f"Bearer {token}":
            raise HubError(401, BAD_TOKEN_MESSAGE)

    write = [Depends(authorized)]

    @app.post("/api/repos/create", dependencies=write)
    async def create_repo(request: Request) -> dict[str, Any]:
        payload = await request.json()
        if payload.get("type", "model") != "model":
            raise HubError(400, "only model repos exist on this fake Hub")
        repo_id = f"{payload['organization']}/{payload['name']}"
        url = f"{str(request.base_url).rstrip('/')}/{repo_id}"
        if repo_id in state.heads:
            raise HubError(409, "You already created this model repo", url=url)
        state.heads[repo_id] = {"main": state.new_id()}
        state.private[repo_id] = payload.get("visibility") == "private"
        state.branch_dir(repo_id, "main").mkdir(parents=True)
        return {"url": url, "name": repo_id}

    @app.post("/api/models/{org}/{name}/branch/{branch:path}", dependencies=write)
    async def create_branch(org: str, name: str, branch: str, request: Request) -> dict[str, Any]:
        repo_id = f"{org}/{name}"
        start = (await request.json()).get("startingPoint") or "main"
        state.require_branch(repo_id, start)
        if branch in state.heads[repo_id]:
            raise HubError(409, f"Reference refs/heads/{branch} already exists")
        state.heads[repo_id][branch] = state.heads[repo_id][start]
        shutil.copytree(state.branch_dir(repo_id, start), state.branch_dir(repo_id, branch))
        return {}

    @app.post("/api/models/{org}/{name}/preupload/{revision:path}", dependencies=write)
    async def preupload(org: str, name: str, revision: str, request: Request) -> dict[str, Any]:
        state.require_branch(f"{org}/{name}", revision)
        files = (await request.json())["files"]
        # "regular" for all: contents come inline with the commit, so no LFS or Xet transfer is attempted.
        return {"files": [{"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files]}

    @app.post("/api/models/{org}/{name}/commit/{revision:path}", dependencies=write)
    async def commit(org: str, name: str, revision: str, request: Request) -> dict[str, Any]:
        repo_id = f"{org}/{name}"
        state.require_branch(repo_id, revision)
        lines = [json.loads(line) for line in (await request.body()).splitlines() if line.strip()]
        header, operations = lines[0], lines[1:]
        if header["key"] != "header":
            raise HubError(400, "the commit payload must start with a header line")
        files: dict[PurePosixPath, bytes] = {}
        for op in operations:
            value = op["value"]
            if op["key"] != "file" or value.get("encoding") != "base64":
                raise HubError(422, f"unsupported commit operation {op['key']!r}: this fake Hub only takes "
                                    "regular files in base64")
            files[_safe_path(value["path"])] = base64.b64decode(value["content"])
        for path, content in files.items():
            target = state.branch_dir(repo_id, revision) / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(content)
        oid = state.new_id()
        state.heads[repo_id][revision] = oid
        state.commits.append({"repo_id": repo_id, "revision": revision, "oid": oid,
                              "summary": header["value"]["summary"], "files": sorted(map(str, files))})
        return {"commitUrl": f"{str(request.base_url).rstrip('/')}/{repo_id}/commit/{oid}", "commitOid": oid,
                "success": True, "pullRequestUrl": None}

    @app.post("/api/validate-yaml")
    async def validate_yaml(request: Request) -> dict[str, Any]:
        # Called by create_commit (the path huggingface_hub takes without hf_xet) before uploading a README.
        content = (await request.json())["content"]
        front_matter = content.split("---")[1] if content.startswith("---") else ""
        try:
            yaml.safe_load(front_matter)
        except yaml.YAMLError as e:
            raise HubError(400, "invalid YAML in README.md", errors=[{"message": str(e)}]) from e
        return {"errors": [], "warnings": []}

    @app.post("/api/collections", dependencies=write)
    async def create_collection(request: Request) -> dict[str, Any]:
        payload = await request.json()
        for slug, existing in state.collections.items():
            if existing["owner"]["name"] == payload["namespace"] and existing["title"] == payload["title"]:
                raise HubError(409, "Collection already exists", slug=slug)
        slug = f"{payload['namespace']}/{payload['title'].lower().replace(' ', '-')}-{state.new_id(24)}"
        state.collections[slug] = {
            "slug": slug, "title": payload["title"], "description": payload.get("description"),
            "owner": {"name": payload["namespace"], "type": "org"}, "items": [], "position": 0,
            "private": bool(payload.get("private")), "theme": "default", "upvotes": 0,
        }
        return state.collection_json(slug)

    @app.get("/api/collections/{slug:path}")
    async def get_collection(slug: str) -> dict[str, Any]:
        if slug not in state.collections:
            raise HubError(404, "Collection not found")
        return state.collection_json(slug)

    @app.post("/api/collections/{slug:path}/items", dependencies=write)
    async def add_collection_item(slug: str, request: Request) -> dict[str, Any]:
        if slug not in state.collections:
            raise HubError(404, "Collection not found")
        item = (await request.json())["item"]
        items = state.collections[slug]["items"]
        if any(i["id"] == item["id"] and i["type"] == item["type"] for i in items):
            raise HubError(409, "Item already in the collection")
        items.append({"_id": state.new_id(24), "id": item["id"], "type": item["type"], "position": len(items)})
        return state.collection_json(slug)

    return app


class FakeHub:
    """Runs the fake Hub with uvicorn in a thread on 127.0.0.1 and a free port, for a ``with`` block."""

    def __init__(self, root: Path, token: str = "dummy") -> None:
        self.root, self.token = Path(root), token
        self.app = create_app(self.root, token)
        self.state: HubState = self.app.state.hub
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> FakeHub:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))  # binding here, not in uvicorn, gives the free port without a race
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        self._server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [sock]}, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake Hub did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = True
        self._thread.join(timeout=10)

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """What the branch holds now: repo path -> bytes."""
        base = self.state.branch_dir(repo_id, revision)
        return {p.relative_to(base).as_posix(): p.read_bytes() for p in sorted(base.rglob("*")) if p.is_file()}
