"""The web demo's server: a small Starlette app serving one offline HTML page (no CDN, no web
fonts: everything it loads comes from this server) and a JSON API the page calls.

    GET  /                     the page (four tabs)
    GET  /api/info             what the bundle can do, its default sampling settings
    POST /api/text_to_image    JSON {caption, num_images, guidance, temperature, top_k, seed,
                               decoding, steps} → {images: [PNG data URLs], width, height, ...}
    POST /api/continue_speech  audio file bytes as the body; settings in the query string
                               (name, prompt_seconds, max_seconds, min_seconds, temperature,
                               top_k, seed)
    POST /api/speech_tokenizer audio file bytes → units, bitrate, resynthesis
    POST /api/image_tokenizer  image file bytes → code grid, reconstruction, PSNR

Every error is a JSON `{"error": message}` (400 for bad input, 413 for an upload or a JSON body
over its limit, 503 when the queue is full, 500 for a bug, whose traceback goes to the server's
log and not to the page). Model work runs one request at a time in a worker thread, in arrival
order: the models are shared and a CPU has no spare cores for two, so four requests at once
queue up and all finish.

Memory does not follow what clients send: the queue is checked before a body is read, a JSON
body is read up to `MAX_JSON_BYTES` and no further, and an upload streams into a spooled
temporary file (in memory up to `SPOOL_BYTES`, then on disk) with the size limit enforced as
the bytes arrive.
"""

from __future__ import annotations

import functools
import io
import json
import logging
import tempfile
import time
import traceback
from pathlib import Path

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from .capabilities import Capabilities
from .media import InputError

STATIC = Path(__file__).parent / "static"
MAX_JSON_BYTES = 64 * 1024  # a caption and a few numbers; the LM's context is far shorter
SPOOL_BYTES = 1 << 20  # uploads past 1 MB go to a temporary file, not to memory
log = logging.getLogger("lm.serve")


class QueueFull(RuntimeError):
    """More requests are queued than the queue takes: answered 503."""


class UploadTooLarge(Exception):
    """The body passed its limit: answered 413. args: its size in bytes, the limit in bytes,
    what sets the limit."""


class JobQueue:
    """One model job at a time, first come first served; at most `max_waiting` requests
    queued or running, later ones are refused."""

    def __init__(self, max_waiting: int = 32):
        self.limiter = anyio.CapacityLimiter(1)
        self.max_waiting = max_waiting
        self.waiting = 0

    def check(self) -> None:
        """QueueFull when no more requests are taken (called before a body is read, too)."""
        if self.waiting >= self.max_waiting:
            raise QueueFull(f"the demo is busy: {self.waiting} requests are queued or running, "
                            "try again in a minute")

    async def run(self, fn, *args, **kwargs) -> dict:
        self.check()
        self.waiting += 1
        arrived = time.perf_counter()
        started = []

        def job():
            started.append(time.perf_counter())
            return fn(*args, **kwargs)

        try:
            result = await anyio.to_thread.run_sync(job, limiter=self.limiter)
        finally:
            self.waiting -= 1
        result["queued_seconds"] = round(started[0] - arrived, 2)
        return result


def _mb(size: int) -> str:
    return f"{size / 2**20:g} MB" if size >= 2**20 else f"{size / 1024:g} KB"


def _error(message: str, status: int) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def build_app(bundle: str | Path, device: str | None = None, max_upload_seconds: float = 60.0,
              max_upload_mb: float = 1024.0, capabilities: Capabilities | None = None
              ) -> Starlette:
    """The app for `bundle` (loaded once, here; or `capabilities` given). Uploads over
    `max_upload_mb` are refused without being kept; audio longer than `max_upload_seconds` is
    cut."""
    caps = capabilities or Capabilities(bundle, device, max_upload_seconds)
    queue = JobQueue()
    max_bytes = int(max_upload_mb * 2**20)

    async def read_body(request: Request, limit: int, into) -> int:
        """Stream the body into the binary file `into`; UploadTooLarge once it passes `limit`
        bytes. The rest of a large body is read and dropped, not kept: a client (a browser
        among them) that is still sending when the answer comes sees a reset connection
        instead of the message."""
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size <= limit:
                into.write(chunk)
        return size

    async def read_upload(request: Request):
        """The upload as a spooled temporary file (the job closes it), or UploadTooLarge."""
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)
        size = await read_body(request, max_bytes, spool)
        if size > max_bytes:
            spool.close()
            raise UploadTooLarge(size, max_bytes, "`lm serve --max-upload-mb`")
        spool.seek(0)
        return spool

    async def read_json(request: Request) -> dict:
        buffer = io.BytesIO()
        size = await read_body(request, MAX_JSON_BYTES, buffer)
        if size > MAX_JSON_BYTES:
            raise UploadTooLarge(size, MAX_JSON_BYTES, "the API's JSON body limit")
        try:
            body = json.loads(buffer.getvalue() or b"{}")
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise InputError(f"the request body is not JSON: {err}") from None
        if not isinstance(body, dict):
            raise InputError("the request body must be a JSON object")
        return body

    def endpoint(handler):
        """Run `handler(request) → (fn, kwargs)`'s model job in the queue; errors → JSON."""

        @functools.wraps(handler)
        async def wrapped(request: Request):
            kwargs = {}
            try:
                queue.check()  # before the body is read: a full queue costs no upload
                fn, kwargs = await handler(request)
                return JSONResponse(await queue.run(fn, **kwargs))
            except InputError as err:
                return _error(str(err), 400)
            except UploadTooLarge as err:
                size, limit, what = err.args
                return _error(f"the request body is {size:,} bytes, over the limit of "
                              f"{_mb(limit)} ({what})", 413)
            except QueueFull as err:
                return _error(str(err), 503)
            except Exception as err:  # a bug: the log gets the traceback, the page a message
                log.error("request %s failed:\n%s", request.url.path, traceback.format_exc())
                return _error(f"internal error ({type(err).__name__}: {err}); the server's "
                              "log has the details", 500)
            finally:
                data = kwargs.get("data")
                if hasattr(data, "close"):
                    data.close()  # the spooled upload: its temporary file goes now

        return wrapped

    def upload_args(request: Request, *names: str) -> dict:
        q = request.query_params
        return {"name": q.get("name") or "upload", **{n: q.get(n) for n in names if n in q}}

    @endpoint
    async def text_to_image(request: Request):
        body = await read_json(request)
        allowed = ("caption", "num_images", "guidance", "temperature", "top_k", "seed",
                   "decoding", "steps")
        unknown = sorted(set(body) - set(allowed))
        if unknown:
            raise InputError(f"unknown field(s) {', '.join(unknown)}; known: "
                             f"{', '.join(allowed)}")
        return caps.text_to_image, body

    @endpoint
    async def continue_speech(request: Request):
        args = upload_args(request, "prompt_seconds", "max_seconds", "min_seconds",
                           "temperature", "top_k", "seed")
        return caps.continue_speech, {"data": await read_upload(request), **args}

    @endpoint
    async def speech_tokenizer(request: Request):
        return caps.speech_tokenizer, {"data": await read_upload(request),
                                       **upload_args(request)}

    @endpoint
    async def image_tokenizer(request: Request):
        return caps.image_tokenizer, {"data": await read_upload(request),
                                      **upload_args(request)}

    async def info(request: Request):
        return JSONResponse({**caps.info(), "waiting": queue.waiting})

    async def page(request: Request):
        return FileResponse(STATIC / "index.html")

    app = Starlette(routes=[
        Route("/", page),
        Route("/api/info", info),
        Route("/api/text_to_image", text_to_image, methods=["POST"]),
        Route("/api/continue_speech", continue_speech, methods=["POST"]),
        Route("/api/speech_tokenizer", speech_tokenizer, methods=["POST"]),
        Route("/api/image_tokenizer", image_tokenizer, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ])
    app.state.capabilities = caps
    app.state.queue = queue
    return app


def serve(bundle: str | Path, host: str = "127.0.0.1", port: int = 7860,
          device: str | None = None, max_upload_seconds: float = 60.0,
          max_upload_mb: float = 1024.0) -> None:
    """Load the bundle and serve the demo until interrupted."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    app = build_app(bundle, device, max_upload_seconds, max_upload_mb)
    shown = "localhost" if host in ("127.0.0.1", "0.0.0.0", "::") else host
    print(f"serving {bundle} at http://{shown}:{port}/  (Ctrl+C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
