"""``vaekit serve RUN``: the latent explorer as a local web app.

Built on Starlette (the ASGI toolkit FastAPI itself is made of) served by uvicorn: both are small, well
kept and typed; the app needs routing, JSON, multipart uploads and static files, nothing more, so FastAPI's
schema layer would add a dependency without adding a feature. Being asynchronous lets the requests that
arrive together wait on one batched decode (:class:`DecodeBatcher`) while the model runs on one worker
thread (PyTorch's CPU kernels use their own threads; one model call at a time keeps them from fighting).

Safety: binds 127.0.0.1 unless ``--host`` says otherwise; ``/files/<path>`` serves files of the run
directory only (a path that resolves outside it, a link out of it, or a missing file is a 404, the same
answer, so the app says nothing about the rest of the disk); uploads over the size limit are refused with
413 before they are read to the end, and files of the wrong type or that do not decode with 415; every
error is JSON ``{"error": message}``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from vaekit.errors import UsageError
from vaekit.explorer import Explorer, Request

DEFAULT_HOST = "127.0.0.1"


class DecodeBatcher:
    """Decode requests that arrive while the model is busy are answered by one ``decode_many`` call."""

    def __init__(self, explorer: Explorer, pool: ThreadPoolExecutor, max_batch: int = 64):
        self.explorer, self.pool, self.max_batch = explorer, pool, max_batch
        self.queue: asyncio.Queue | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.batches: list[int] = []  # the size of every batch run (for tests and the latency benchmark)

    async def decode(self, request: Request) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # one queue and worker per event loop (a test client may start several)
            self._loop, self.queue = loop, asyncio.Queue()
            self._task = loop.create_task(self._worker(self.queue))
        future = asyncio.get_running_loop().create_future()
        await self.queue.put((request, future))
        return await future

    async def _worker(self, queue: asyncio.Queue) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await queue.get()]
            while len(items) < self.max_batch and not queue.empty():
                items.append(queue.get_nowait())
            self.batches.append(len(items))
            try:
                results = await loop.run_in_executor(self.pool, self.explorer.decode_many, [r for r, _ in items])
            except Exception as e:  # answer each waiting request (with a UsageError its message)
                for _, f in items:
                    if not f.done():
                        f.set_exception(e)
                continue
            for (_, f), res in zip(items, results):
                if not f.done():
                    f.set_result(res)


def safe_path(root: Path, rel: str) -> Path | None:
    """``root / rel`` if it is an existing file inside ``root`` after resolving ``..`` and links; else None."""
    root = root.resolve()
    try:
        path = (root / rel).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    if path != root and root not in path.parents:
        return None
    return path if path.is_file() else None


def build_app(explorer: Explorer, *, max_batch: int = 64) -> Any:
    """The Starlette app of one explorer (one model, loaded once)."""
    from starlette.applications import Starlette
    from starlette.exceptions import HTTPException
    from starlette.requests import Request as HttpRequest
    from starlette.responses import FileResponse, HTMLResponse, JSONResponse
    from starlette.routing import Route

    from vaekit.html_report import _environment

    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="vaekit-model")
    batcher = DecodeBatcher(explorer, pool, max_batch=max_batch)
    page = _environment().get_template("explorer.html.j2").render(info=explorer.info(),
                                                                    info_json=json.dumps(explorer.info()))

    def error(status: int, message: str) -> JSONResponse:
        return JSONResponse({"error": message}, status_code=status)

    async def run(fn, *args):
        return await asyncio.get_running_loop().run_in_executor(pool, fn, *args)

    async def body(request: HttpRequest) -> dict[str, Any]:
        try:
            value = await request.json()
        except ValueError:
            raise UsageError("the request body is not JSON") from None
        if not isinstance(value, dict):
            raise UsageError("the request body must be a JSON object")
        return value

    def cond_of(value: Any) -> dict[str, int]:
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(isinstance(v, int) for v in value.values()):
            raise UsageError("cond must be an object of integer labels, e.g. {\"y\": 3}")
        return value

    async def index(request: HttpRequest):
        return HTMLResponse(page)

    async def info(request: HttpRequest):
        return JSONResponse(explorer.info())

    async def example(request: HttpRequest):
        return JSONResponse(await run(explorer.describe_example, request.path_params["key"]))

    async def decode(request: HttpRequest):
        b = await body(request)
        z = b.get("z")
        if not isinstance(z, list) or not all(isinstance(v, (int, float)) for v in z):
            raise UsageError("z must be a list of numbers")
        r = Request(z=[float(v) for v in z], layer=int(b.get("layer", 0)), base=b.get("base"),
                    cond=tuple(sorted(cond_of(b.get("cond")).items())))
        return JSONResponse(await batcher.decode(r))

    async def sample(request: HttpRequest):
        b = await body(request)
        items = await run(explorer.sample, int(b.get("n", 8)), float(b.get("temperature", 1.0)), cond_of(b.get("cond")),
                          int(b.get("seed", 0)))
        return JSONResponse({"items": items})

    async def interpolate(request: HttpRequest):
        b = await body(request)
        items = await run(lambda: explorer.interpolate(str(b.get("a", "test:0")), str(b.get("b", "test:1")),
                                                       int(b.get("steps", 8)),
                                                       cond_of(b["cond"]) if b.get("cond") is not None else None,
                                                       int(b.get("layer", 0))))
        return JSONResponse({"items": items})

    async def upload(request: HttpRequest):
        size = request.headers.get("content-length")
        limit = explorer.max_upload
        if size is not None and size.isdigit() and int(size) > limit + 64 * 1024:  # multipart framing allowed for
            return error(413, f"the upload is {size} bytes, over the limit of {limit} bytes")
        chunks, total = [], 0
        async for chunk in request.stream():  # read no more than the limit (a missing or false length)
            total += len(chunk)
            if total > limit + 64 * 1024:
                return error(413, f"the upload is over the limit of {limit} bytes")
            chunks.append(chunk)
        from starlette.datastructures import UploadFile
        from starlette.formparsers import MultiPartParser

        async def replay():
            for c in chunks:
                yield c
        try:
            form = await MultiPartParser(request.headers, replay(), max_part_size=limit + 1).parse()
        except Exception as e:
            return error(400, f"the upload is not a multipart form with a file ({e})")
        file = form.get("file")
        if not isinstance(file, UploadFile):
            return error(400, "the form has no file field named 'file'")
        data = await file.read()
        try:
            return JSONResponse(await run(explorer.upload, data, file.filename or "upload"))
        except UsageError as e:
            status = 413 if "over the limit" in str(e) else 415
            return error(status, str(e))

    async def files(request: HttpRequest):
        path = safe_path(explorer.run_dir, request.path_params["path"])
        if path is None:
            return error(404, "not found")
        return FileResponse(path)

    async def usage_error(request: HttpRequest, exc: Exception):
        return error(400, str(exc))

    async def http_error(request: HttpRequest, exc: HTTPException):
        return error(exc.status_code, "not found" if exc.status_code == 404 else str(exc.detail))

    routes = [Route("/", index), Route("/api/info", info), Route("/api/example/{key}", example),
              Route("/api/decode", decode, methods=["POST"]), Route("/api/sample", sample, methods=["POST"]),
              Route("/api/interpolate", interpolate, methods=["POST"]),
              Route("/api/upload", upload, methods=["POST"]), Route("/files/{path:path}", files)]
    app = Starlette(routes=routes, exception_handlers={UsageError: usage_error, HTTPException: http_error})
    app.state.batcher = batcher
    app.state.explorer = explorer
    return app


@contextmanager
def serving(app: Any, host: str = DEFAULT_HOST, port: int = 0) -> Iterator[int]:
    """Serve ``app`` with uvicorn on a thread of this process for the ``with`` block; yields the port (``0``: a
    free one). For tests, benchmarks and notebooks; ``vaekit serve`` runs uvicorn in the foreground."""
    import socket
    import threading
    import time

    import uvicorn

    if port == 0:
        with socket.socket() as s:
            s.bind((host, 0))
            port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the explorer's server did not start on {host}:{port}")
        time.sleep(0.02)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def serve(run_dir: str | os.PathLike, *, host: str = DEFAULT_HOST, port: int = 8000, device: str | None = None,
          max_upload: int = 5 * 1024 * 1024, log: Any = print) -> None:
    """Load the run's model once and serve the explorer until interrupted."""
    import uvicorn

    explorer = Explorer(run_dir, device=device, max_upload=max_upload)
    app = build_app(explorer)
    log(f"explorer of {run_dir} ({explorer.info()['model']}, {explorer.spec.modality}) at http://{host}:{port}/")
    if host not in ("127.0.0.1", "localhost", "::1"):
        log(f"warning: listening on {host}: anyone who can reach this machine can use the explorer")
    uvicorn.run(app, host=host, port=port, log_level="warning")
