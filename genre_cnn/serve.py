"""A local web page: drop a song, see its genre and what the model heard.

    pip install -e .[app]                                   # starlette + uvicorn, once
    genre-cnn serve                                         # http://127.0.0.1:8000, the `predict` default model
    genre-cnn serve --ckpt checkpoints/RUN/cnn/best.ckpt --port 8080 --max-mb 50 [--host 0.0.0.0]

The page (genre_cnn/static/serve.html) takes a dropped or picked audio file, or a microphone recording
(encoded to WAV in the browser), and shows the top genres as a bar chart with the model that answered, the
genre probabilities of every window along the track, and the log-mel spectrogram and chroma the network saw.

Why Starlette + uvicorn and not Gradio: Gradio is the usual ML demo, but it pulls in dozens of packages
(FastAPI, pydantic, pandas, huggingface-hub, ...), is slow to import, changes its API between majors and its
themes use web fonts from the internet; what we need is one ASGI app of three routes and one static page,
two small pure-Python packages (starlette, uvicorn) that FastAPI and Gradio are themselves built on, and
tests drive it over plain HTTP or in a real browser. Nothing is fetched from elsewhere at run time: the
charts are inline SVG drawn by the page's own script, the spectrogram and chroma PNGs are rendered here
with matplotlib.

Uploads arrive as the raw request body (POST /api/analyse?name=FILE) and are streamed to a temporary file,
which is deleted in `finally`; nothing past --max-mb is stored, and the answer is then 413 (the page checks
the size before it sends). The model runs in a threadpool, so the server keeps answering while it works.
Unusable uploads get a one-line JSON error, never a traceback. `analyse` is the only function that touches
the model: re-point it when the prediction API changes.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import socket
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse
from starlette.routing import Route

log = logging.getLogger(__name__)
PAGE = Path(__file__).resolve().parent / "static" / "serve.html"
MAX_SECONDS = 15 * 60  # longer audio is refused: its spectrogram alone would take GBs
DRAIN = 4  # an upload over the limit is read (not stored) up to DRAIN x the limit before the 413 answer


def analyse(model, path: Path, max_seconds: float = MAX_SECONDS) -> dict:
    """The model adapter: one audio file -> what the page shows. Raises AudioError (one line) for bad audio.

    Returns {"model": class name, "genres": [n], "probabilities": [n] (whole file, as `predict`),
    "window_times": [K] (s, window centres, spread evenly), "window_probabilities": [K][n] (one point for a model
    that sees the clip whole), "duration": s, "hop_seconds": s per frame, "logmel": (n_mels, T) numpy array (what the
    model's front end makes of the file), "chroma": (12, T) array, or None for a front end without chroma}.
    """
    import torch

    from genre_cnn.audio import PREDICT_MIN_SECONDS, AudioError, load_audio

    config = model.frontend.config
    sr = config.sample_rate
    y = load_audio(path, sr, min_seconds=PREDICT_MIN_SECONDS)  # (samples,)
    duration = y.size / sr
    if duration > max_seconds:
        raise AudioError(f"{path}: too long ({duration / 60:.1f} min > {max_seconds / 60:g} min)")
    wave = torch.from_numpy(y)
    with torch.no_grad():
        feats = model.frontend(wave[None].to(model.frontend.hann.device))[0].cpu()  # (channels, T)
        window_probs = model.window_probs(wave).float().cpu()  # (K, n)
    probs = window_probs.mean(dim=0)  # (n,): the track's probabilities, as predict_waveform
    centres = (torch.arange(len(window_probs)) + 0.5) * duration / len(window_probs)  # (K,) seconds
    return {"model": type(model).__name__, "genres": model.genres, "probabilities": probs.tolist(),
            "window_times": centres.tolist(), "window_probabilities": window_probs.tolist(),
            "duration": duration, "hop_seconds": config.hop_length / sr,
            "logmel_unit": "dB" if config.compression == "db" else "log10(1 + 10^4 power)",
            "logmel": feats[:config.n_mels].numpy(), "chroma": feats[config.n_mels:].numpy() if config.chroma else None}


def feature_png(data, hop_seconds: float, kind: str, unit: str = "dB") -> str:
    """A (bins, T) log-mel (kind "logmel", in `unit`) or chroma ("chroma") array as a labelled PNG data URL."""
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: its global state is not thread-safe

    logmel = kind == "logmel"
    height = 2.6 if logmel else 1.9  # inches; fixed margins, so that both images share one time axis
    fig = Figure(figsize=(9, height), dpi=100)
    bottom, top = 0.45 / height, 1 - 0.3 / height
    ax = fig.add_axes((0.08, bottom, 0.8, top - bottom))
    extent = (0, data.shape[1] * hop_seconds, 0, data.shape[0])
    img = ax.imshow(data, origin="lower", aspect="auto", extent=extent, interpolation="nearest",
                    cmap="magma" if logmel else "viridis",
                    vmin=max(float(data.min()), float(data.max()) - 80) if logmel else 0, vmax=None if logmel else 1)
    ax.set(xlabel="time (s)", ylabel="mel bin" if logmel else "pitch class",
           title="log-mel spectrogram (model input)" if logmel else "chroma (model input)")
    if not logmel:
        ax.set_yticks(np.arange(12) + 0.5, ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"],
                      fontsize=7)
    cax = fig.add_axes((0.895, bottom, 0.015, top - bottom))
    fig.colorbar(img, cax=cax).set_label(unit if logmel else "relative energy")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _answer(model, path: Path, checkpoint: str) -> dict:
    """analyse + PNGs: the JSON the page gets."""
    result = analyse(model, path)
    for kind in ("logmel", "chroma"):
        data = result.pop(kind)
        result[f"{kind}_png"] = None if data is None else feature_png(data, result["hop_seconds"], kind,
                                                                      result["logmel_unit"])
    return {**result, "checkpoint": checkpoint}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def make_app(model, checkpoint: str, max_mb: float = 50.0, upload_dir: Path | None = None) -> Starlette:
    """The ASGI app: GET / (the page), GET /api/info (model, genres, limit), POST /api/analyse?name=FILE
    (raw file body -> the `_answer` JSON, or {"error": one line} with 400, 413, 422 or 500)."""
    max_bytes = int(max_mb * 1024 * 1024)
    upload_dir = Path(upload_dir or tempfile.gettempdir())
    info = {"model": type(model).__name__, "checkpoint": checkpoint, "genres": model.genres, "max_mb": max_mb}

    async def page(request: Request) -> FileResponse:
        return FileResponse(PAGE, media_type="text/html")

    async def api_info(request: Request) -> JSONResponse:
        return JSONResponse(info)

    async def api_analyse(request: Request) -> JSONResponse:
        from genre_cnn.audio import AudioError

        name = Path(request.query_params.get("name", "upload")).name or "upload"
        suffix = Path(name).suffix.lower()
        suffix = suffix if suffix[1:].isalnum() and len(suffix) <= 6 else ""
        fd, tmp = tempfile.mkstemp(prefix="genre-cnn-", suffix=suffix, dir=upload_dir)
        try:
            size = 0
            with os.fdopen(fd, "wb") as f:
                async for chunk in request.stream():
                    size += len(chunk)
                    if size <= max_bytes:
                        f.write(chunk)
                    elif size > DRAIN * max_bytes:  # hang up; up to here we read on, so the client sees the 413
                        break
            if size > max_bytes:
                return _error(413, f"{name}: larger than the {max_mb:g} MB limit (--max-mb)")
            if size == 0:
                return _error(400, f"{name}: empty upload")
            try:
                return JSONResponse(await run_in_threadpool(_answer, model, Path(tmp), checkpoint))
            except AudioError as err:
                return _error(422, str(err).replace(tmp, name))
            except Exception as err:  # noqa: BLE001 - the page gets one line, the log the traceback
                log.exception("analysing %s failed", name)
                return _error(500, f"{name}: could not analyse ({type(err).__name__})")
        finally:
            Path(tmp).unlink(missing_ok=True)

    return Starlette(routes=[Route("/", page), Route("/api/info", api_info),
                             Route("/api/analyse", api_analyse, methods=["POST"])])


def serve_in_thread(app: Starlette, host: str = "127.0.0.1", port: int = 0) -> tuple[str, Callable[[], None]]:
    """Starts `app` on a background thread (port 0: a free one); returns (base URL, stop function)."""
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.02)

    def stop() -> None:
        server.should_exit = True
        thread.join(10)
        sock.close()

    return f"http://{host}:{sock.getsockname()[1]}", stop


def run(model, checkpoint: Path, host: str = "127.0.0.1", port: int = 8000, max_mb: float = 50.0) -> int:
    """Serves the page until Ctrl+C (the `genre-cnn serve` command)."""
    app = make_app(model, str(checkpoint), max_mb)
    print(f"genre-cnn serve: http://{host}:{port}/  model {type(model).__name__} from {checkpoint}  "
          f"(uploads up to {max_mb:g} MB; Ctrl+C stops)", flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning")
    return 0
