"""Finding and loading audio clips: the one place that knows dataset layouts and the genre list.

    python -m genre_cnn.audio DATA_DIR     # lists what would be used, and what is skipped and why

Length policy (documented in the README): a clip shorter than `min_seconds` is skipped as too short;
a dataset clip is fixed to `clip_seconds` by taking the centred excerpt of a longer file and by looping
a shorter one (GTZAN's clips are 29.9-30.6 s, so this trims or pads a few milliseconds at most).
Prediction uses the whole file, whatever its length.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# The one source of truth for GTZAN's classes, in the canonical order.
GTZAN_GENRES: tuple[str, ...] = (
    "blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock",
)
AUDIO_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".mp3")
PREDICT_MIN_SECONDS = 0.5  # prediction refuses shorter files; longer ones are used whole (looped up to one window)


_WARNED: set[str] = set()


def warn_once(message: str) -> None:
    """Logs a warning about the data once per process: a run builds a DataModule per model family (and one
    for a refit), and each lists and caches the same folder."""
    if message not in _WARNED:
        _WARNED.add(message)
        log.warning("%s", message)


class AudioError(ValueError):
    """A file that cannot be used as audio; the message is one line fit for a log."""


class DataError(RuntimeError):
    """A dataset that cannot be used at all (missing, or no usable file); the message says what to do."""


@dataclass(frozen=True)
class Clip:
    """One audio file of a dataset: `key` is `genre/file name`, unique and stable across machines."""

    path: Path
    genre: str

    @property
    def key(self) -> str:
        return f"{self.genre}/{self.path.name}"


def find_genre_root(data_dir: Path) -> Path | None:
    """The folder whose sub-folders are genres, for any supported layout, or None if there is none.

    Accepts `genres/<genre>/` (original tarball), `genres_original/<genre>/` or `Data/genres_original/`
    (Kaggle), and `<data_dir>/<genre>/` (any folder-per-genre collection).
    """
    for candidate in (data_dir / "genres", data_dir / "genres_original", data_dir / "Data" / "genres_original",
                      data_dir):
        if candidate.is_dir() and any(_audio_files(d) for d in candidate.iterdir() if d.is_dir()):
            return candidate
    return None


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def discover_genres(genre_root: Path) -> tuple[str, ...]:
    """Genre names of a folder-per-genre collection: GTZAN's canonical order if it is GTZAN, else sorted."""
    names = sorted(d.name for d in genre_root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if set(names) == set(GTZAN_GENRES):
        return GTZAN_GENRES
    for empty in (n for n in names if not _audio_files(genre_root / n)):
        warn_once(f"{genre_root / empty}: empty genre folder, no audio files: not a class")
    return tuple(n for n in names if _audio_files(genre_root / n))


def find_clips(genre_root: Path, genres: tuple[str, ...]) -> list[Clip]:
    """Every audio file under `genre_root/<genre>/`, sorted; other files are logged and ignored."""
    clips: list[Clip] = []
    for genre in genres:
        folder = genre_root / genre
        if not folder.is_dir():
            warn_once(f"no folder for genre {genre!r} in {genre_root}: that class has no clips")
            continue
        files = _audio_files(folder)
        ignored = [p.name for p in folder.iterdir() if p.is_file() and p.suffix.lower() not in AUDIO_EXTENSIONS
                   and not p.name.startswith(".")]
        if ignored:
            warn_once(f"{folder}: ignored {len(ignored)} file(s) with unknown extensions ("
                      + ", ".join(ignored[:3]) + (", ...)" if len(ignored) > 3 else ")"))
        if not files:
            warn_once(f"{folder}: empty genre folder, no audio files")
        clips.extend(Clip(p, genre) for p in files)
    return clips


def dataset_clips(data_dir: Path) -> list[Clip]:
    """Every clip of a folder-per-genre dataset in any supported layout; DataError if there is none."""
    root = find_genre_root(data_dir)
    if root is None:
        raise DataError(f"{data_dir}: no folder-per-genre audio found")
    return find_clips(root, discover_genres(root))


def load_audio(path: Path, sample_rate: int, min_seconds: float = 3.0) -> np.ndarray:
    """Read any supported file as mono float32 at `sample_rate`, shape (samples,).

    Raises AudioError (one line) for unreadable, empty, non-finite-only, silent or too-short audio.
    NaN and inf samples are replaced by 0; stereo is averaged; other rates are resampled (soxr).
    """
    import librosa
    import soundfile as sf

    try:
        try:
            y, sr = sf.read(str(path), dtype="float32", always_2d=True)  # (samples, channels)
            y = y.mean(axis=1)  # (samples,)
        except sf.LibsndfileError:
            with warnings.catch_warnings():  # librosa's audioread fallback warns on every call
                warnings.simplefilter("ignore")
                y, sr = librosa.load(str(path), sr=None, mono=True)
    except Exception as err:  # noqa: BLE001 - any decoder failure means "not usable audio"
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise AudioError(f"{path}: unreadable audio ({reason})") from None
    if y.size == 0:
        raise AudioError(f"{path}: no audio samples (empty or truncated file)")
    y = np.nan_to_num(y.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    np.clip(y, -1.0, 1.0, out=y)
    if sr != sample_rate:
        y = librosa.resample(y, orig_sr=sr, target_sr=sample_rate, res_type="soxr_hq").astype(np.float32)
    seconds = y.size / sample_rate
    if seconds < min_seconds:
        raise AudioError(f"{path}: too short ({seconds:.2f} s < {min_seconds:g} s)")
    if np.max(np.abs(y)) < 1e-4:
        raise AudioError(f"{path}: silent (peak below -80 dBFS)")
    return y


def fix_length(y: np.ndarray, samples: int) -> np.ndarray:
    """Centred excerpt of a longer signal, or a shorter one looped, to exactly `samples`, shape (samples,)."""
    if y.size >= samples:
        start = (y.size - samples) // 2
        return y[start:start + samples]
    return np.resize(y, samples)  # repeats y from its start


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--sample-rate", type=int, default=None, help="Hz (default: the front end's)")
    args = parser.parse_args()
    if args.sample_rate is None:
        from genre_cnn.frontend import FrontEndConfig

        args.sample_rate = FrontEndConfig().sample_rate
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        clips = dataset_clips(args.data_dir)
    except DataError as err:
        raise SystemExit(f"error: {err}") from None
    bad = 0
    for clip in clips:
        try:
            load_audio(clip.path, args.sample_rate)
        except AudioError as err:
            bad += 1
            log.warning("skipped %s", err)
    print(f"{args.data_dir}: {len({c.genre for c in clips})} genres, {len(clips) - bad} usable clips, {bad} skipped")


if __name__ == "__main__":
    main()
