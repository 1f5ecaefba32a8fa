"""A local web page: drop a song, see its genre and what the model heard.

    pip install -e .[app]                                   # starlette + uvicorn, once
    genre-cnn serve                                         # http://127.0.0.1:8000, the `predict` default model
    genre-cnn serve --ckpt checkpoints/RUN/cnn/best.ckpt --port 8080 --max-mb 50 [--host 0.0.0.0]

The page (genre_cnn/app/static/serve.html) takes a dropped or picked audio file, or a microphone recording
(encoded to WAV in the browser), and shows the top genres as a bar chart with the model that answered (the answer
`genre-cnn predict` gives), the genre probabilities of every window along the track, the log-mel spectrogram the
network saw and the chroma (the CNN's input; drawn for reference for musicnn). A model that knows what it does not
know also gives its verdict, and the page says plainly when a file does not sound like music it knows.

Why Starlette + uvicorn and not Gradio: Gradio is the usual ML demo, but it pulls in dozens of packages
(FastAPI, pydantic, pandas, huggingface-hub, ...), is slow to import, changes its API between majors and its
themes use web fonts from the internet; what we need is one ASGI app of three routes and one static page,
two small pure-Python packages (starlette, uvicorn) that FastAPI and Gradio are themselves built on, and
tests drive it over plain HTTP or in a real browser. Nothing is fetched from elsewhere at run time: the
charts are inline SVG drawn by the page's own script, the spectrogram and chroma PNGs are rendered here
with matplotlib.

Uploads arrive as the raw request body (POST /api/analyse?name=FILE) and are streamed to a file in the
server's private temporary folder (`genre-cnn-serve-PID-*`, removed when the server stops; one left by a killed
server is removed when the next one starts); each file is deleted after its answer. What one request may cost
is bounded: at most --max-mb stored (413 past it); the body must arrive within BODY_SECONDS, with no pause over
IDLE_SECONDS (408); at most MAX_UPLOADS uploads at once (503 past it); audio of at most MAX_SECONDS, refused
from its header or while it is decoded in pieces, never decoded whole first; the network sees a few
windows at a time (the classifier's `track_probs`); at most ANALYSES analyses run at once, and one whose client
has left stops at its next block or batch. Measured peak memory per request: benchmarks/hostile_serve.py.
Requests whose Host header does not name this server, or whose Origin is another site, are refused (403), so
neither a web page the user visits nor DNS rebinding can use the server. The model runs in a thread, so the
server keeps answering while it works. Unusable uploads get a one-line JSON error, never a traceback.
What the page shows of a file is made in genre_cnn.app.serve_analysis (`analyse`, the only function that
touches the model, and `feature_png`).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import socket
import tempfile
import threading
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import uvicorn
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

from genre_cnn.app.serve_analysis import MAX_SECONDS, analyse, feature_png
from genre_cnn.app.serve_guard import SameOrigin, private_upload_dir
from genre_cnn.errors import GenreCnnError
from genre_cnn.inference.session import Predictor

log = logging.getLogger(__name__)
PAGE = Path(__file__).resolve().parent / "static" / "serve.html"
DRAIN = 4  # an upload over the limit is read (not stored) up to DRAIN x the limit before the 413 answer
IDLE_SECONDS, BODY_SECONDS = 15.0, 300.0  # the longest pause in an upload's body, and its whole time
MAX_UPLOADS, ANALYSES = 32, 1  # uploads in progress at once (each stores at most --max-mb); analyses at once
MAX_CONNECTIONS = 64  # open connections; uvicorn answers 503 past it


class ServeError(GenreCnnError):
    """The server cannot start (a busy or impossible port, a bad setting); the message is one line."""

    exit_code = 2


class Abandoned(Exception):
    """The client left: the analysis stops."""


def _answer(predictor: Predictor, path: Path, check: Callable[[], None] | None = None) -> dict:
    """analyse + PNGs: the JSON the page gets."""
    result = analyse(predictor, path, check=check)
    titles = {"logmel": None, "chroma": result.pop("chroma_title")}
    for kind, title in titles.items():
        result[f"{kind}_png"] = feature_png(result.pop(kind), result["hop_seconds"], kind, result["logmel_unit"], title)
    return {**result, "checkpoint": str(predictor.checkpoint)}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


async def _receive(request: Request, f, max_bytes: int, idle: float) -> int:
    """Streams the body into `f` (up to `max_bytes`; read on, unstored, up to DRAIN x) and returns its size.
    Raises TimeoutError when it pauses over `idle` s or takes over BODY_SECONDS, ClientDisconnect if the client
    leaves."""
    size, chunks = 0, request.stream().__aiter__()
    deadline = anyio.current_time() + BODY_SECONDS
    while size <= DRAIN * max_bytes:
        with anyio.fail_after(max(0.0, min(idle, deadline - anyio.current_time()))):
            try:
                chunk = await chunks.__anext__()
            except StopAsyncIteration:
                break
        size += len(chunk)
        if size <= max_bytes:
            f.write(chunk)
    return size


async def _watch(request: Request, gone: threading.Event) -> None:
    """Sets `gone` when the client disconnects (polled: the body has been read, only a disconnect can come)."""
    while not gone.is_set():
        if await request.is_disconnected():
            gone.set()
        await anyio.sleep(0.25)


def make_app(model, max_mb: float = 50.0, upload_dir: Path | None = None,
             idle_seconds: float = IDLE_SECONDS) -> Starlette:
    """The ASGI app: GET / (the page), GET /api/info (model, genres, limit), POST /api/analyse?name=FILE
    (raw file body -> the `_answer` JSON, or {"error": one line} with 400, 403, 408, 413, 422, 500 or 503).
    `model`: a Predictor (genre_cnn.inference.session), or a classifier. Without `upload_dir`, uploads go to a
    private temporary folder removed at shutdown."""
    predictor = Predictor.of(model)
    max_bytes = int(max_mb * 1024 * 1024)
    info = {"model": type(predictor.model).__name__, "checkpoint": str(predictor.checkpoint),
            "genres": predictor.genres, "max_mb": max_mb, "max_minutes": MAX_SECONDS / 60}
    limiter = anyio.CapacityLimiter(ANALYSES)
    uploads = {"now": 0, "dir": Path(upload_dir) if upload_dir else None}

    @asynccontextmanager
    async def lifespan(app: Starlette):
        try:
            yield
        finally:
            if upload_dir is None and uploads["dir"] is not None:
                shutil.rmtree(uploads["dir"], ignore_errors=True)

    async def page(request: Request) -> FileResponse:
        return FileResponse(PAGE, media_type="text/html")

    async def api_info(request: Request) -> JSONResponse:
        return JSONResponse(info)

    async def api_analyse(request: Request) -> JSONResponse:
        if uploads["now"] >= MAX_UPLOADS:
            return _error(503, f"busy: {MAX_UPLOADS} uploads in progress, try again shortly")
        uploads["now"] += 1
        try:
            return await _analyse_upload(request)
        finally:
            uploads["now"] -= 1

    async def _analyse_upload(request: Request) -> JSONResponse:
        from genre_cnn.audio.decode import AudioError

        name = Path(request.query_params.get("name", "upload")).name or "upload"
        suffix = Path(name).suffix.lower()
        suffix = suffix if suffix[1:].isalnum() and len(suffix) <= 6 else ""
        try:
            uploads["dir"] = uploads["dir"] or private_upload_dir()
            fd, tmp = tempfile.mkstemp(prefix="upload-", suffix=suffix, dir=uploads["dir"])
        except OSError as err:  # out of file descriptors or disk space
            log.warning("cannot store an upload: %s", err)
            return _error(503, f"{name}: the server cannot store uploads now ({err.strerror or err}); try again")
        try:
            with os.fdopen(fd, "wb") as f:
                size = await _receive(request, f, max_bytes, idle_seconds)
            if size > max_bytes:
                return _error(413, f"{name}: larger than the {max_mb:g} MB limit (--max-mb)")
            if size == 0:
                return _error(400, f"{name}: empty upload")
            gone = threading.Event()

            def check() -> None:
                if gone.is_set():
                    raise Abandoned

            async with anyio.create_task_group() as tasks:
                tasks.start_soon(_watch, request, gone)
                try:
                    answer = await anyio.to_thread.run_sync(_answer, predictor, Path(tmp), check, limiter=limiter)
                except Exception as err:  # noqa: BLE001 - raised below, outside the task group
                    answer = err
                tasks.cancel_scope.cancel()
            if isinstance(answer, Exception):
                raise answer
            return JSONResponse(answer)
        except TimeoutError:
            return _error(408, f"{name}: the upload stalled (no data for {idle_seconds:g} s, or over "
                               f"{BODY_SECONDS:g} s in all)")
        except (ClientDisconnect, Abandoned):
            log.info("%s: the client left; stopped", name)
            return _error(499, f"{name}: the client left")
        except AudioError as err:
            return _error(422, str(err).replace(tmp, name))
        except Exception as err:  # noqa: BLE001 - the page gets one line, the log the traceback
            log.exception("analysing %s failed", name)
            return _error(500, f"{name}: could not analyse ({type(err).__name__})")
        finally:
            Path(tmp).unlink(missing_ok=True)

    return Starlette(routes=[Route("/", page), Route("/api/info", api_info),
                             Route("/api/analyse", api_analyse, methods=["POST"])],
                     middleware=[Middleware(SameOrigin)], lifespan=lifespan)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on (host, port) (port 0: a free one), or ServeError in one line."""
    if not 0 <= port <= 65535:
        raise ServeError(f"--port {port}: not a port number (0-65535)")
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind)
    except (OSError, UnicodeError) as err:
        raise ServeError(f"--host {host}: not an address of this machine ({err})") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)  # connections wait from now on, until the server takes them
    except OSError as err:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {err.strerror or err} "
                         "(another server there? try --port with another number)") from None
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def serve_in_thread(app: Starlette, host: str = "127.0.0.1", port: int = 0) -> tuple[str, Callable[[], None]]:
    """Starts `app` on a background thread (port 0: a free one); returns (base URL, stop function)."""
    sock = bind(host, port)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", limit_concurrency=MAX_CONNECTIONS))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)
        sock.close()

    return _url(sock), stop


def run(predictor: Predictor, host: str = "127.0.0.1", port: int = 8000, max_mb: float = 50.0) -> int:
    """Serves the page with `predictor`'s model until Ctrl+C (the `genre-cnn serve` command). ServeError (one line)
    when the port is busy or impossible or --max-mb is not a positive number: checked before the address is
    printed."""
    if not (math.isfinite(max_mb) and max_mb > 0):
        raise ServeError(f"--max-mb {max_mb}: give the largest upload as a positive number of MB")
    sock = bind(host, port)
    uploads = private_upload_dir()  # also removes those of servers killed before they could
    app = make_app(predictor, max_mb, upload_dir=uploads)
    print(f"genre-cnn serve: {_url(sock)}/  model {type(predictor.model).__name__} from {predictor.checkpoint}  "
          f"(uploads up to {max_mb:g} MB; Ctrl+C stops)", flush=True)
    config = uvicorn.Config(app, log_level="warning", limit_concurrency=MAX_CONNECTIONS)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        shutil.rmtree(uploads, ignore_errors=True)
    return 0
