"""A GPU check: train, compute features and predict on the GPU, and check that it answers as the CPU does.

    .venv/bin/python benchmarks/gpu_check.py                       # on a machine with a GPU (sized for 5 min on one)
    .venv/bin/python benchmarks/gpu_check.py --device cpu --quick  # the same code on the CPU, in seconds

Without a GPU (and without `--device cpu`) it says so in one line and exits 0. On a GPU, with the project home in
a temporary folder, it
1. generates the demo clips (genre_cnn.data.demo, `--clips-per-genre` of each of the four genres, 8 s) and caches
   their features, as `configs/demo.yaml` does, with more clips (and 32 windows of each an epoch);
2. trains the CNN (GenreModule with the real DataModule and augmentation) in fp32 (`32-true`) and in bf16
   (`bf16-mixed`): one warm-up epoch, then one timed epoch, in windows/s;
3. runs the front end (log-mel + chroma) of the same clips on the GPU and on the CPU;
4. predicts the clips with the fp32 CNN just trained and with the ready model (musicnn) on both, in fp32, and
   with the ready model in bf16 autocast on the GPU (reported, not held);
5. runs the ready model's ONNX graph with ONNX Runtime's CUDA provider against its CPU provider, when
   onnxruntime-gpu is installed (plain onnxruntime has no CUDA provider: the row says so; on the CPU, the CPU
   provider against itself);
6. with two GPUs or more, trains one epoch with DDP on two of them (a child process; Lightning starts rank 1).
It prints one table (`--out FILE` also writes it) and exits 1 if a held check fails.

Tolerances (GPU against CPU, fp32 with TF32 off): probabilities within 1e-4 (what ONNX Runtime and PyTorch are
held to on the CPU), log-mel within 0.05 dB over the bins within 60 dB of each clip's peak (lower bins are float32
rounding: a bin 60 dB down carries about 1e-4 of the frame's amplitude error), chroma within 1e-3 (each frame is
normalised to a maximum of 1). Training in bf16 must give a finite loss; its speed is reported.

On a bare GPU machine whose `python3` already has PyTorch with CUDA, Lightning, torchmetrics and onnxruntime
but not genre_cnn's audio packages (librosa, soundfile and the like), build a wheelhouse here first, for that
machine's Python (3.12 by default), into the git-ignored `.whl/`:

    .venv/bin/python benchmarks/gpu_check.py --wheels .whl [--python-version 3.12]

then copy the checkout with `.whl/` there and run, from its root, this one line:

    python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .whl/*.whl && PYTHONPATH=$PWD:/tmp/site PYTHONUNBUFFERED=1 python3 benchmarks/gpu_check.py --out gpu_check.txt

Nothing else travels (no virtual environment, no data: the clips are generated there, the ready model is in
the checkout).
"""  # noqa: E501 (the command above is one line)

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import logging
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's genre_cnn, whatever is installed

PROB_TOL, DB_TOL, DB_RANGE, CHROMA_TOL = 1e-4, 0.05, 60.0, 1e-3
# what genre_cnn imports on this script's path beyond a PyTorch + Lightning + onnxruntime image (--wheels)
WHEELS = ("librosa", "soundfile", "cffi", "pycparser", "soxr", "audioread", "pooch", "platformdirs", "decorator")


def wheels(folder: Path, python_version: str) -> int:
    """Downloads the binary wheels of WHEELS, at the versions installed here, for Linux x86_64 and `python_version`."""
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in WHEELS]
    platforms = [a for p in ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
                 for a in ("--platform", p)]
    return subprocess.call([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:",
                            "--python-version", python_version, "--implementation", "cp", *platforms,
                            "-d", str(folder), *pins])


def demo_data(args: argparse.Namespace):
    """The DataModule of the CNN on the generated clips, prepared and set up for fitting."""
    from genre_cnn.data.sources.demo import Demo
    from genre_cnn.data.store import FeatureStore
    from genre_cnn.training.datamodule import GenreDataModule

    source = Demo(str(args.home / "demo"), clips_per_genre=args.clips_per_genre, seconds=args.seconds)
    dm = GenreDataModule(source, FeatureStore(clip_seconds=args.seconds, workers=1 if args.quick else None),
                         crops_per_clip=2 if args.quick else 32, batch_size=args.batch,
                         num_workers=args.loader_workers, family="cnn")
    dm.prepare_data()
    dm.setup("fit")
    return dm


def train(dm, accelerator: str, precision: str, devices: int = 1, epochs: int = 2) -> dict:
    """Fits a fresh CNN (GenreModule); windows/s of the last epoch (the ones before warm up), final training loss."""
    import lightning as L
    import torch

    from genre_cnn.audio.frontend import FrontEndConfig
    from genre_cnn.models import families
    from genre_cnn.training.lit import build_module

    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)  # its tips and notes, not the check's

    class EpochTimer(L.Callback):
        def __init__(self):
            self.times: list[float] = []

        def on_train_epoch_start(self, trainer, module):
            torch.cuda.synchronize() if torch.cuda.is_available() else None
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            torch.cuda.synchronize() if torch.cuda.is_available() else None
            self.times.append(time.perf_counter() - self.start)

    timer = EpochTimer()
    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(max_epochs=epochs, accelerator=accelerator, devices=devices, precision=precision,
                        strategy="ddp" if devices > 1 else "auto", limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[timer])
    model = build_module(families.get("cnn"), dm.genres, FrontEndConfig(), {})
    trainer.fit(model, datamodule=dm)
    windows = len(dm.idx["train"]) * dm.crops_per_clip
    loss = float(trainer.callback_metrics["train/loss"])
    return {"rate": windows / timer.times[-1], "loss": loss, "model": model.model.eval(),
            "rank": trainer.global_rank}


def clips(dm, count: int, sample_rate: int) -> list:
    """`count` demo clips, spread over the genres, as float32 waveforms (samples,) at `sample_rate`."""
    import torch

    from genre_cnn.audio.decode import load_audio

    paths = sorted(Path(dm.source.data_dir).rglob("*.wav"))
    return [torch.from_numpy(load_audio(p, sample_rate)) for p in paths[::max(1, len(paths) // count)][:count]]


def same_features(model, waves: list, device: str) -> tuple[float, float]:
    """Max |GPU - CPU| of the front end's log-mel (dB, bins within DB_RANGE of the clip's peak) and chroma."""
    import copy

    import torch

    frontend, n_mels = model.frontend, model.frontend.config.n_mels
    cpu, dev = copy.deepcopy(frontend).cpu(), copy.deepcopy(frontend).to(device)
    db, chroma = 0.0, 0.0
    with torch.no_grad():
        for y in waves:
            a = cpu(y[None])[0]  # (C, T)
            b = dev(y[None].to(device))[0].cpu()  # (C, T)
            loud = a[:n_mels] > a[:n_mels].max() - DB_RANGE
            db = max(db, float((a[:n_mels] - b[:n_mels]).abs()[loud].max()))
            chroma = max(chroma, float((a[n_mels:] - b[n_mels:]).abs().max()) if a.shape[0] > n_mels else 0.0)
    return db, chroma


def same_answers(model, waves: list, device: str, bf16: bool = False) -> tuple[float, int, float]:
    """Max |device - CPU| of any clip's genre probability, how many clips get the same top genre, and the seconds
    the device took (the front end included)."""
    import copy

    import torch

    cpu, dev = copy.deepcopy(model).cpu().eval(), copy.deepcopy(model).to(device).eval()
    worst, same, took = 0.0, 0, 0.0
    for y in waves:
        p = cpu.window_probs(y).mean(0)  # (n,)
        start = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            q = dev.window_probs(y.to(device)).float().mean(0).cpu()  # (n,)
        took += time.perf_counter() - start
        worst, same = max(worst, float((p - q).abs().max())), same + int(p.argmax() == q.argmax())
    return worst, same, took


def onnx_cuda(waves: list, provider: str = "CUDAExecutionProvider") -> str | tuple[float, int]:
    """The ready model's ONNX graph on `provider` against ONNX Runtime's CPU provider (as `same_answers`), or
    why not."""
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed"
    if provider not in ort.get_available_providers():
        return f"no {provider} in onnxruntime {ort.__version__} (pip install onnxruntime-gpu)"
    import numpy as np

    from genre_cnn.inference.onnx_predict import cached_onnx
    from genre_cnn.inference.predict import READY_MODEL

    graph = str(cached_onnx(READY_MODEL))
    cpu = ort.InferenceSession(graph, providers=["CPUExecutionProvider"])
    dev = ort.InferenceSession(graph, providers=[provider])
    worst, same = 0.0, 0
    for y in waves:
        feed = {"waveform": y.numpy()[None]}  # (1, samples) at the ready model's rate
        p, q = (s.run(["probabilities"], feed)[0][0] for s in (cpu, dev))  # (n,) each
        worst, same = max(worst, float(np.abs(p - q).max())), same + int(p.argmax() == q.argmax())
    return worst, same


def verdict(worst: float, tolerance: float, same: int = 0, clips: int = 0) -> str:
    """"yes" when the largest difference is within the tolerance (and every clip has the same top genre), else
    "NO"."""
    return "yes" if worst <= tolerance and same == clips else "NO"


def ddp_child(args: argparse.Namespace) -> None:
    """Rank 0 prints `DDP rate loss`; Lightning re-runs this command line for rank 1."""
    dm = demo_data(args)
    out = train(dm, "cpu" if args.device == "cpu" else "gpu", "bf16-mixed" if args.device != "cpu" else "32-true",
                devices=2, epochs=args.epochs)
    if out["rank"] == 0:
        print(f"DDP {out['rate']:.1f} {out['loss']:.4f}", flush=True)


def ddp(args: argparse.Namespace) -> tuple[float, float] | str:
    """Windows/s and final loss of one DDP fit on two devices, in a child process."""
    cmd = [sys.executable, __file__, "--ddp-child", "--home", str(args.home), "--device", args.device,
           "--clips-per-genre", str(args.clips_per_genre), "--seconds", str(args.seconds), "--batch", str(args.batch),
           "--loader-workers", str(args.loader_workers), "--epochs", str(args.epochs)] + ["--quick"] * args.quick
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("DDP ")), None)
    if proc.returncode or line is None:
        return f"failed (exit {proc.returncode}): {(proc.stderr.strip().splitlines() or ['?'])[-1][:80]}"
    rate, loss = map(float, line.split()[1:])
    return rate, loss


def rows_of(args: argparse.Namespace) -> list[tuple[str, str, str, str]]:
    """(what, result, held to, ok: "yes" / "NO" / "-") for every step."""
    import math

    import torch

    from genre_cnn.inference.predict import READY_MODEL, load_model

    device, accel = ("cpu", "cpu") if args.device == "cpu" else ("cuda", "gpu")
    dm = demo_data(args)
    rows, cnn = [], None
    for precision in ("32-true", "bf16-mixed"):
        out = train(dm, accel, precision, epochs=args.epochs)
        cnn = cnn or out["model"]
        ok = math.isfinite(out["loss"])
        rows.append((f"train the CNN, {precision}", f"{out['rate']:.0f} windows/s, loss {out['loss']:.3f}",
                     "finite loss", "yes" if ok else "NO"))
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False  # fp32 from here on
    waves = clips(dm, args.clips, cnn.sample_rate)
    db, chroma = same_features(cnn, waves, device)
    ok = "yes" if verdict(db, DB_TOL) == verdict(chroma, CHROMA_TOL) == "yes" else "NO"
    rows.append(("front end, log-mel (dB) / chroma", f"max diff {db:.1e} / {chroma:.1e}",
                 f"<= {DB_TOL} / {CHROMA_TOL}", ok))
    ready = load_model(READY_MODEL)
    ready_waves = clips(dm, args.clips, ready.sample_rate)
    for name, model, ws, bf16 in (("the CNN just trained", cnn, waves, False), ("the ready model", ready, ready_waves,
                                  False), ("the ready model, bf16 autocast", ready, ready_waves, True)):
        worst, same, took = same_answers(model, ws, device, bf16)
        held = not bf16
        ok = verdict(worst, PROB_TOL, same, len(ws)) if held else "-"
        rows.append((f"predict, {name}", f"max diff {worst:.1e}, same top genre {same}/{len(ws)}, "
                     f"{len(ws) / took:.1f} clips/s on {device}", f"<= {PROB_TOL:g}" if held else "(reported)", ok))
    provider = "CPUExecutionProvider" if device == "cpu" else "CUDAExecutionProvider"
    onnx = onnx_cuda(ready_waves, provider)
    what = f"ONNX Runtime, {provider}, the ready model"
    if isinstance(onnx, str):
        rows.append((what, onnx, "", "-"))
    else:
        rows.append((what, f"max diff {onnx[0]:.1e}, same top genre {onnx[1]}/{len(ready_waves)}", f"<= {PROB_TOL:g}",
                     verdict(onnx[0], PROB_TOL, onnx[1], len(ready_waves))))
    gpus = torch.cuda.device_count() if device == "cuda" else 2 * args.ddp
    if gpus < 2:
        rows.append(("DDP, 2 devices", "skipped: " + ("one GPU" if device == "cuda" else "--ddp not given"), "", "-"))
    else:
        out = ddp(args)
        ok = "NO" if isinstance(out, str) or not math.isfinite(out[1]) else "yes"
        shown = out if isinstance(out, str) else f"{out[0]:.0f} windows/s, loss {out[1]:.3f}"
        rows.append(("DDP, 2 devices" + (", bf16-mixed" if device == "cuda" else ", CPU processes"), shown,
                     "finite loss", ok))
    return rows


def table(rows: list[tuple[str, str, str, str]]) -> str:
    head = ("check", "result", "held to", "ok")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()  # noqa: E731
    return "\n".join([line(head), "-" * len(line(head)), *map(line, rows)])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=("auto", "cpu"), default="auto",
                        help="auto: the GPU, or one line and exit 0 without one; cpu: the same steps on the CPU")
    parser.add_argument("--quick", action="store_true", help="a few short clips: the whole check in seconds")
    parser.add_argument("--ddp", action="store_true", help="with --device cpu: DDP on two CPU processes too")
    parser.add_argument("--clips-per-genre", type=int, help="demo clips of each genre (default 64; --quick 5)")
    parser.add_argument("--seconds", type=float, help="length of a demo clip (default 8; --quick 4)")
    parser.add_argument("--batch", type=int, help="training windows per batch (default 64; --quick 8)")
    parser.add_argument("--clips", type=int, help="clips predicted on both devices (default 16; --quick 2)")
    parser.add_argument("--epochs", type=int, help="epochs per fit, the last one timed (default 2; --quick 1)")
    parser.add_argument("--loader-workers", type=int, help="DataLoader workers (default 4; --quick 0)")
    parser.add_argument("--out", type=Path, help="also write the table to this file")
    parser.add_argument("--home", type=Path, help="project home for the clips and caches (default: a temporary one)")
    parser.add_argument("--wheels", type=Path, metavar="DIR", help="only download the wheels a bare GPU machine "
                        "lacks (see above) into DIR, then exit")
    parser.add_argument("--python-version", default="3.12", help="with --wheels: that machine's Python")
    parser.add_argument("--ddp-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.wheels:
        return wheels(args.wheels, args.python_version)
    for key, full, quick in (("clips_per_genre", 64, 5), ("seconds", 8.0, 4.0), ("batch", 64, 8), ("clips", 16, 2),
                             ("epochs", 2, 1), ("loader_workers", 4, 0)):
        if getattr(args, key) is None:
            setattr(args, key, quick if args.quick else full)
    if args.ddp_child:
        os.environ["GENRE_CNN_HOME"] = str(args.home)
        ddp_child(args)
        return 0

    import torch

    if args.device == "auto" and not torch.cuda.is_available():
        print(f"gpu_check: no GPU here (torch {torch.__version__} sees no CUDA device); nothing to check "
              "(--device cpu --quick runs the same steps on the CPU)")
        return 0
    start, temporary = time.perf_counter(), args.home is None
    args.home = Path(tempfile.mkdtemp(prefix="gpu_check-")) if temporary else args.home
    os.environ["GENRE_CNN_HOME"] = str(args.home)  # caches and clips go there, never into the checkout
    try:
        rows = rows_of(args)
    finally:
        if temporary:
            shutil.rmtree(args.home, ignore_errors=True)
    where = torch.cuda.get_device_name() if args.device == "auto" else f"CPU, {os.cpu_count()} cores"
    cuda = f", CUDA {torch.version.cuda}" if args.device == "auto" else ""
    text = (f"genre_cnn GPU check: {where}; {platform.machine()}, torch {torch.__version__}{cuda}; "
            f"{datetime.date.today()}\n{table(rows)}\n"
            f"{len(rows)} checks in {time.perf_counter() - start:.0f} s; {sum(r[3] == 'NO' for r in rows)} failed")
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 1 if any(r[3] == "NO" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
