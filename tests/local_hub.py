"""LocalHub: a small stand-in for the Hugging Face Hub's upload endpoints, on 127.0.0.1.

The real `huggingface_hub` client talks to it (point `HF_ENDPOINT`, or `endpoint=`, at
`hub.endpoint`), so an upload can be checked end to end with no network: the tests and the
demo push a folder, then load the model back from the files the server received.

It speaks what huggingface_hub 2.x calls for `create_repo`, `create_branch` and
`upload_folder` / `create_commit` (read from its `hf_api.py`, `_commit_api.py`, `lfs.py`):

    POST /api/repos/create                         {name, organization, visibility}
    POST /api/models/{repo}/branch/{branch}        {startingPoint}
    POST /api/validate-yaml                        {content}: the README's YAML front matter
    POST /api/models/{repo}/preupload/{revision}   {files: [{path, size, sample}]} → upload modes
    POST /{repo}.git/info/lfs/objects/batch        LFS batch API ("basic" transfer) → PUT hrefs
    PUT  /lfs-objects/{sha256}                     the LFS content (checked against its sha256)
    POST /api/models/{repo}/commit/{revision}      ndjson: header, file (base64), lfsFile, deleted*
    GET  /api/models/{repo}[/revision/{revision}]  repo_info (the client asks after a no-op push)

Xet storage is not served: with `hf_xet` installed the client sends every "lfs"-mode file through
Xet (there is no fallback to the LFS batch API in this client), and Xet's token endpoint answers
501 here. So either run the client with `HF_HUB_DISABLE_XET=1` (see `client_env` and
`without_xet`) to exercise LFS, or give `lfs_patterns=()` so every small file goes "regular"
(base64 inside the commit), which needs no Xet. Anything else answers a 404/501 naming the call,
so a client that starts using a new endpoint fails loudly instead of half-uploading.

Received files land in `root/<repo_id>/<revision>/<path>`; `repos`, `branches`, `commits` and
`authorizations` record what the client did, so tests can check e.g. that the token went out as a
Bearer header. The server never prints or logs a header.
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import hashlib
import json
import re
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path, PurePosixPath
from urllib.parse import parse_qs, unquote, urlsplit

import yaml

# Like the Hub's default .gitattributes: weights are LFS whatever their size; big files too.
LFS_PATTERNS = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.ckpt", "*.onnx", "*.npz")
LFS_MIN_SIZE = 10 * 1024 * 1024
_REPO_API = re.compile(r"^/api/models/(?P<repo>[\w.\-]+(?:/[\w.\-]+)?)"
                       r"/(?P<op>preupload|commit|branch|revision|xet-write-token)/(?P<rev>[^/]+)$")


class HubError(Exception):
    """An error answer: HTTP status, message, and the X-Error-Code the client maps to a type."""

    def __init__(self, status: int, message: str, code: str | None = None, **extra):
        super().__init__(message)
        self.status, self.code, self.extra = status, code, extra


def git_blob_oid(data: bytes) -> str:
    """The id git gives a blob: the client compares it to skip unchanged regular files."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class LocalHub:
    """`with LocalHub(tmp) as hub: push(folder, "user/x", endpoint=hub.endpoint)`."""

    def __init__(self, root: str | Path, lfs_patterns: tuple[str, ...] = LFS_PATTERNS):
        self.root = Path(root)
        self.lfs_patterns = tuple(lfs_patterns)
        self.repos: dict[str, dict] = {}  # repo id → {"private": bool}
        self.branches: list[tuple[str, str]] = []  # (repo id, branch) created through the API
        self.commits: list[dict] = []  # {"repo", "revision", "summary", "files": {path: mode}}
        self.authorizations: list[str] = []  # Authorization header values, in request order
        self.heads: dict[tuple[str, str], str] = {}  # (repo, revision) → commit oid
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle ----------------------------------------------------------------------
    def __enter__(self) -> LocalHub:
        self.root.mkdir(parents=True, exist_ok=True)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)  # port 0: a free one
        self._server.hub = self
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="local-hub")
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    @property
    def endpoint(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def client_env(self, disable_xet: bool = True) -> dict[str, str]:
        """Environment for a client in a subprocess (read when huggingface_hub is imported)."""
        return {"HF_ENDPOINT": self.endpoint, **({"HF_HUB_DISABLE_XET": "1"} if disable_xet
                                                 else {})}

    @staticmethod
    @contextlib.contextmanager
    def without_xet():
        """In this process, make the client upload "lfs" files by the LFS batch API, not Xet.
        `HF_HUB_DISABLE_XET` is read once at import, so the switch it sets is flipped here."""
        from huggingface_hub import constants

        before = constants.HF_HUB_DISABLE_XET
        constants.HF_HUB_DISABLE_XET = True
        try:
            yield
        finally:
            constants.HF_HUB_DISABLE_XET = before

    def path(self, repo_id: str, revision: str = "main") -> Path:
        """The folder holding what `repo_id` at `revision` received."""
        return self.root / repo_id / revision

    # ---- endpoint logic (called by the handler, under the lock) ----------------------------
    def _repo(self, repo_id: str) -> dict:
        if repo_id not in self.repos:
            raise HubError(404, f"Repository {repo_id} not found on LocalHub", "RepoNotFound")
        return self.repos[repo_id]

    def _revision(self, repo_id: str, revision: str) -> Path:
        self._repo(repo_id)
        folder = self.path(repo_id, revision)
        if not folder.is_dir():
            raise HubError(404, f"Revision {revision} not found in {repo_id}", "RevisionNotFound")
        return folder

    def create_repo(self, body: dict) -> dict:
        if body.get("type") not in (None, "model"):
            raise HubError(501, f"LocalHub serves model repos only, not {body.get('type')!r}")
        repo_id = "/".join(p for p in (body.get("organization"), body["name"]) if p)
        url = f"{self.endpoint}/{repo_id}"
        if repo_id in self.repos:
            # the client reads "url" from this answer too (create_repo with exist_ok=True)
            raise HubError(409, f"You already created this model repo: {repo_id}", url=url)
        self.repos[repo_id] = {"private": body.get("visibility") == "private"
                               or body.get("private") is True}
        self.path(repo_id).mkdir(parents=True)
        return {"url": url, "name": repo_id}

    def create_branch(self, repo_id: str, branch: str, body: dict) -> dict:
        start = self._revision(repo_id, body.get("startingPoint") or "main")
        if self.path(repo_id, branch).exists():
            raise HubError(409, f"Branch {branch} already exists in {repo_id}")
        shutil.copytree(start, self.path(repo_id, branch))
        self.branches.append((repo_id, branch))
        head = self.heads.get((repo_id, body.get("startingPoint") or "main"))
        if head:
            self.heads[(repo_id, branch)] = head
        return {}

    def validate_yaml(self, body: dict) -> dict:
        """Checks like the Hub's: the front matter parses to a mapping, and list fields hold
        strings. A card without front matter only draws a warning, as on the Hub."""
        content = body.get("content", "")
        match = re.match(r"^---\s*\n(.*?\n)?---\s*(\n|$)", content, re.S)
        if not match:
            return {"errors": [], "warnings": [{"message": "empty or missing yaml metadata in "
                                                           "repo card"}]}
        try:
            meta = yaml.safe_load(match.group(1) or "") or {}
        except yaml.YAMLError as err:
            raise HubError(400, f"Invalid YAML in README.md: {err}") from err
        if not isinstance(meta, dict):
            raise HubError(400, "README.md metadata must be a YAML mapping")
        errors, warnings = [], []
        for key in ("tags", "datasets", "language"):
            value = meta.get(key)
            if value is not None and not (isinstance(value, str) or (
                    isinstance(value, list) and all(isinstance(v, str) for v in value))):
                errors.append({"message": f'"{key}" must be a string or a list of strings'})
        if "metrics" in meta and not isinstance(meta["metrics"], list):
            warnings.append({"message": '"metrics" should be a list of metric ids (values '
                                        'belong in "model-index")'})
        if errors:
            raise HubError(400, "; ".join(e["message"] for e in errors))
        return {"errors": [], "warnings": warnings}

    def _mode(self, path: str, size: int) -> str:
        name = PurePosixPath(path).name
        lfs = size >= LFS_MIN_SIZE or any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(name, p)
                                          for p in self.lfs_patterns)
        return "lfs" if lfs and size > 0 else "regular"  # empty files cannot be LFS

    def preupload(self, repo_id: str, revision: str, body: dict) -> dict:
        folder = self._revision(repo_id, revision)
        files = []
        for f in body.get("files", []):
            mode = self._mode(f["path"], int(f["size"]))
            target = folder / _safe(f["path"])
            oid = None
            if target.is_file():  # lets the client skip files that did not change
                data = target.read_bytes()
                oid = hashlib.sha256(data).hexdigest() if mode == "lfs" else git_blob_oid(data)
            files.append({"path": f["path"], "uploadMode": mode, "shouldIgnore": False,
                          "oid": oid})
        return {"files": files, "commitOid": self.heads.get((repo_id, revision))}

    def lfs_batch(self, repo_id: str, body: dict) -> dict:
        self._repo(repo_id)
        if body.get("operation") != "upload":
            raise HubError(501, "LocalHub's LFS batch API serves uploads only")
        if "basic" not in body.get("transfers", ["basic"]):
            raise HubError(501, "LocalHub's LFS batch API offers the basic transfer only")
        objects = []
        for obj in body.get("objects", []):
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if not self._blob(obj["oid"]).is_file():  # no actions = already stored
                entry["actions"] = {"upload": {"href": f"{self.endpoint}/lfs-objects/"
                                                       f"{obj['oid']}"}}
            objects.append(entry)
        return {"transfer": "basic", "objects": objects}

    def lfs_put(self, oid: str, data: bytes) -> dict:
        if hashlib.sha256(data).hexdigest() != oid:
            raise HubError(400, f"LFS object {oid}: content does not match its sha256")
        blob = self._blob(oid)
        blob.parent.mkdir(parents=True, exist_ok=True)
        tmp = blob.with_suffix(f".{threading.get_ident()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(blob)  # atomic: a concurrent batch call never sees half an object
        return {}

    def _blob(self, oid: str) -> Path:
        if not re.fullmatch(r"[0-9a-f]{64}", oid):
            raise HubError(400, f"not a sha256 oid: {oid!r}")
        return self.root / ".lfs" / oid  # repo ids cannot start with "."

    def commit(self, repo_id: str, revision: str, lines: list[dict], params: dict) -> dict:
        folder = self._revision(repo_id, revision)
        if params.get("create_pr"):
            raise HubError(501, "LocalHub does not implement pull requests (create_pr)")
        header = next((x["value"] for x in lines if x.get("key") == "header"), {})
        parent = header.get("parentCommit")
        head = self.heads.get((repo_id, revision))
        if parent and parent != head:
            raise HubError(412, f"parent commit {parent} is not the head of {revision}")
        writes, deletes, modes = {}, [], {}
        for item in lines:  # check everything before touching the tree: all or nothing
            key, value = item.get("key"), item.get("value", {})
            if key == "file":
                if value.get("encoding") != "base64":
                    raise HubError(400, f"{value.get('path')}: only base64 content is supported")
                writes[_safe(value["path"])] = base64.b64decode(value["content"])
                modes[value["path"]] = "regular"
            elif key == "lfsFile":
                blob = self._blob(value["oid"])
                if not blob.is_file():
                    raise HubError(400, f"{value['path']}: LFS object {value['oid']} was never "
                                        "uploaded")
                writes[_safe(value["path"])] = blob
                modes[value["path"]] = "lfs"
            elif key in ("deletedFile", "deletedFolder"):
                deletes.append(_safe(value["path"]))
            elif key != "header":
                raise HubError(501, f"LocalHub does not implement commit operation {key!r}")
        for rel in deletes:
            target = folder / rel
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        for rel, data in writes.items():
            target = folder / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, Path):
                shutil.copyfile(data, target)
            else:
                target.write_bytes(data)
        oid = hashlib.sha1(json.dumps([head, repo_id, revision, lines], sort_keys=True)
                           .encode()).hexdigest()
        self.heads[(repo_id, revision)] = oid
        self.commits.append({"repo": repo_id, "revision": revision, "oid": oid,
                             "summary": header.get("summary", ""), "files": modes,
                             "deleted": [str(d) for d in deletes]})
        return {"commitUrl": f"{self.endpoint}/{repo_id}/commit/{oid}", "commitOid": oid,
                "success": True, "pullRequestUrl": None}

    def repo_info(self, repo_id: str, revision: str) -> dict:
        folder = self._revision(repo_id, revision)
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        return {"id": repo_id, "sha": self.heads.get((repo_id, revision)),
                "private": self.repos[repo_id]["private"],
                "siblings": [{"rfilename": f} for f in files]}


def _safe(path: str) -> PurePosixPath:
    """A repo path that stays inside the revision folder (the server writes to disk)."""
    p = PurePosixPath(path)
    if p.is_absolute() or not p.parts or any(part in ("..", ".", "") for part in p.parts):
        raise HubError(400, f"invalid path in repo: {path!r}")
    return p


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the client's connection pool expects

    def log_message(self, format, *args) -> None:  # quiet: never echo requests
        pass

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()  # the CRLF after each chunk
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _answer(self, status: int, payload: dict, code: str | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if code:
            self.send_header("X-Error-Code", code)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _dispatch(self) -> None:
        hub: LocalHub = self.server.hub
        url = urlsplit(self.path)
        params = {k: v[-1] for k, v in parse_qs(url.query).items()}
        body = self._body()
        auth = self.headers.get("Authorization")
        try:
            with hub._lock:
                if auth:
                    hub.authorizations.append(auth)
                payload = self._route(hub, self.command, url.path, body, params)
            self._answer(200, payload)
        except HubError as err:
            self._answer(err.status, {"error": str(err), **err.extra}, err.code)
        except Exception as err:  # a request it cannot read, or a bug of its own
            # 422, not 500: the client retries 5xx answers with back-off, which only hides this.
            self._answer(422, {"error": f"LocalHub could not handle {self.command} {url.path}: "
                                        f"{type(err).__name__}: {err}"})

    @staticmethod
    def _route(hub: LocalHub, method: str, raw_path: str, body: bytes, params: dict) -> dict:
        """`raw_path` is still URL-quoted: a revision may hold a quoted "/"."""
        def js() -> dict:
            return json.loads(body or b"{}")

        path = unquote(raw_path)
        if method == "POST" and path == "/api/repos/create":
            return hub.create_repo(js())
        if method == "POST" and path == "/api/validate-yaml":
            return hub.validate_yaml(js())
        if method == "PUT" and path.startswith("/lfs-objects/"):
            return hub.lfs_put(path.rsplit("/", 1)[1], body)
        if method == "POST" and path.endswith(".git/info/lfs/objects/batch"):
            return hub.lfs_batch(path[1: -len(".git/info/lfs/objects/batch")], js())
        m = _REPO_API.match(raw_path)
        repo, rev = (m["repo"], unquote(m["rev"])) if m else (None, None)
        if m and method == "POST" and m["op"] == "preupload":
            return hub.preupload(repo, rev, js())
        if m and method == "POST" and m["op"] == "commit":
            lines = [json.loads(x) for x in body.splitlines() if x.strip()]
            return hub.commit(repo, rev, lines, params)
        if m and method == "POST" and m["op"] == "branch":
            return hub.create_branch(repo, rev, js())
        if m and method == "GET" and m["op"] == "revision":
            return hub.repo_info(repo, rev)
        bare = re.fullmatch(r"/api/models/([\w.\-]+(?:/[\w.\-]+)?)", path)
        if bare and method == "GET":
            return hub.repo_info(bare[1], "main")
        hint = " (Xet storage: run the client with HF_HUB_DISABLE_XET=1)" \
            if m and m["op"] == "xet-write-token" else ""
        raise HubError(501, f"LocalHub does not implement {method} {path}{hint}")

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _dispatch
