"""Which checkpoint to use, and what it must look like before anything is built from it.

    from genre_cnn.models.checkpoint import default_checkpoint    # the model `genre-cnn predict` uses by default

Choosing: `default_checkpoint` is the latest run trained on real music (`latest_checkpoint`: the families' order,
refit.ckpt over best.ckpt; runs on the generated demo clips are skipped, see `dataset_kind`), else the ready model
shipped in genre_cnn/ready/ (READY_MODEL); `choose_default` also says why. `resolve_checkpoint` turns a folder
into its one obvious checkpoint.

Checking, before anything is built (`genre_cnn.inference.predict.load_model` calls these in order): `check_file`
caps the file's size and the uncompressed total of its zip members, read from the zip directory, so a small
file that inflates to gigabytes is refused before torch.load allocates anything; `check_contents` wants a
class name that is a string, a short genre list, every hyperparameter within the ranges training accepts
(its family's `bounds` and the shared ones of genre_cnn.bounds, checked by the same function as in training; the
front end by FrontEndConfig itself), at most MAX_ELEMENTS weights implied by them, and a state dict of exactly
the shapes they build, or the family's `legacy_state` of earlier versions (worked out on torch's meta device: a
file cannot make it allocate a model), and the tensors whose values the family bounds (`value_bounds`: a detector's
scales and thresholds) within them;
`check_weights` caps the tensor count and element count and wants every weight finite. Each raises
CheckpointError with one line naming the file. Imports no torch until a check needs it (or `dataset_kind`
for a run without its config).
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

from genre_cnn.bounds import MAX_WEIGHTS, TRAINING, check, implied_shapes, weight_count
from genre_cnn.errors import GenreCnnError
from genre_cnn.models import families
from genre_cnn.paths import Run

READY_MODEL = Path(__file__).resolve().parents[1] / "ready" / "musicnn_gtzan_mini.ckpt"  # shipped; used without a run
MAX_FILE_BYTES = 512 * 2**20  # a checkpoint file, and the uncompressed total of its members
MAX_TENSORS = 4096
MAX_ELEMENTS = MAX_WEIGHTS  # 512 MB of float32
MAX_GENRES, MAX_GENRE_CHARS = 1000, 100


class CheckpointError(GenreCnnError):
    """A file that is not a usable genre_cnn checkpoint; the message is one line naming the file."""

    exit_code = 2


def check_file(path: Path) -> None:
    """Exists, is a regular file under MAX_FILE_BYTES, and is a zip (torch.save's format) whose members
    inflate to at most MAX_FILE_BYTES in all."""
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file (pass the .ckpt inside it)")
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise CheckpointError(f"{path}: {size / 2**20:.0f} MB is larger than any genre_cnn model "
                              f"(limit {MAX_FILE_BYTES // 2**20} MB); refused")
    try:
        with zipfile.ZipFile(path) as z:
            inflated = sum(info.file_size for info in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        raise CheckpointError(f"{path}: corrupt or not a checkpoint (not a torch.save zip archive)") from None
    if inflated > MAX_FILE_BYTES:
        raise CheckpointError(f"{path}: its contents unpack to {inflated / 2**20:.0f} MB, more than any genre_cnn "
                              f"model (limit {MAX_FILE_BYTES // 2**20} MB); refused")


def _tampered(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"{path}: {what}; a damaged or tampered checkpoint")


def check_contents(path: Path, checkpoint: object) -> None:
    """The loaded dict, before any model is built: class name, genres, every hyperparameter within the ranges
    training accepts (genre_cnn.bounds), and a state dict whose tensors have exactly the shapes those settings
    build, with at most MAX_ELEMENTS weights in all (compared without allocating the model)."""
    needed = {"genre_cnn_class", "hyper_parameters", "state_dict"}
    if not isinstance(checkpoint, dict) or not needed <= set(checkpoint):
        raise CheckpointError(f"{path}: not a genre_cnn checkpoint (no genre_cnn_class, hyper_parameters "
                              "or state_dict); train one with `python train.py`")
    if not isinstance(checkpoint["genre_cnn_class"], str):
        raise _tampered(path, f"genre_cnn_class is a {type(checkpoint['genre_cnn_class']).__name__}, not a class name")
    hp = checkpoint["hyper_parameters"]
    if not isinstance(hp, dict):
        raise _tampered(path, "hyper_parameters is not a mapping")
    genres = hp.get("genres")
    if (not isinstance(genres, (list, tuple)) or not 2 <= len(genres) <= MAX_GENRES
            or not all(isinstance(g, str) and 0 < len(g) <= MAX_GENRE_CHARS for g in genres)
            or len(set(genres)) != len(genres)):
        raise _tampered(path, f"genres must be 2-{MAX_GENRES} distinct names of 1-{MAX_GENRE_CHARS} characters")
    if not all(isinstance(key, str) for key in hp):
        raise _tampered(path, "a hyperparameter is not a name")
    for key, value in hp.items():
        if isinstance(value, float) and not math.isfinite(value):
            raise _tampered(path, f"hyperparameter {key:.40} must be a finite number, got {value}")
    family = families.of(checkpoint["genre_cnn_class"])
    bounds = {**TRAINING, **(family.classifier().bounds if family is not None else {})}
    if why := check(hp, bounds):
        raise _tampered(path, f"hyperparameter {why[0]:.40} {why[1]}")
    if hp.get("frontend") is not None:
        from genre_cnn.audio.frontend import FrontEndConfig
        from genre_cnn.errors import SettingsError

        try:
            FrontEndConfig.of(hp["frontend"])
        except SettingsError as err:
            raise _tampered(path, str(err).removeprefix("--")) from None
        except (TypeError, AttributeError):
            raise _tampered(path, "frontend is not a mapping of front-end settings") from None
    _check_shapes(path, checkpoint["genre_cnn_class"], hp, checkpoint["state_dict"])


def _check_shapes(path: Path, name: str, hp: dict, state: object) -> None:
    """The weight count the hyperparameters imply, and each tensor of the state dict against it."""
    family = families.of(name)
    if family is None:
        return  # not a model family: genre_cnn.inference.predict.load_model refuses the name
    try:
        shapes = implied_shapes(family, dict(hp))
    except Exception as err:  # noqa: BLE001 - settings the classifier cannot take
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:160]
        raise CheckpointError(f"{path}: does not fit {name} ({reason})") from None
    weights = weight_count(shapes)
    if weights > MAX_ELEMENTS:
        raise _tampered(path, f"its settings imply {weights:,} weights, more than {MAX_ELEMENTS:,} weights "
                              "(the limit of any genre_cnn model)")
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: state_dict is not a mapping of named tensors")
    found = {k.removeprefix("model."): tuple(getattr(v, "shape", ())) for k, v in state.items() if isinstance(k, str)}
    for key, shape in shapes.items():
        if key not in found:
            raise _tampered(path, f"its weights lack {key[:60]} that its settings build")
        if found[key] != shape:
            raise _tampered(path, f"{key[:60]} has shape {list(found[key])}, its settings build {list(shape)}")
    legacy = family.classifier().legacy_state()  # what checkpoints of earlier versions also hold
    extra = sorted(k for k in set(found) - set(shapes) if legacy.get(k) != found[k])
    if extra or len(found) != len(state):
        raise _tampered(path, f"its weights hold {str(extra[:1])[1:-1] or 'a non-string key'} that its settings "
                              "do not build")
    for key, (low, high) in family.classifier().value_bounds.items():  # e.g. an open-set detector's thresholds
        tensor = state.get(key, state.get(f"model.{key}"))
        if getattr(tensor, "numel", lambda: 0)() and not low <= float(tensor.min()) <= float(tensor.max()) <= high:
            raise _tampered(path, f"{key} holds values outside [{low}, {high}]")


def check_weights(path: Path, state: dict) -> None:
    """The state dict: at most MAX_TENSORS tensors of MAX_ELEMENTS elements in all, every value finite."""
    import torch

    if not isinstance(state, dict) or len(state) > MAX_TENSORS:
        raise CheckpointError(f"{path}: state_dict is not a mapping of at most {MAX_TENSORS} tensors")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{path}: state_dict holds something other than named tensors")
    if sum(v.numel() for v in state.values()) > MAX_ELEMENTS:
        raise CheckpointError(f"{path}: more than {MAX_ELEMENTS:,} weights; refused")
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{path}: non-finite weights (NaN or inf) in {key}; a damaged checkpoint")


def _run_checkpoints(checkpoints: Path, exportable: bool) -> dict[Path, list[Path]]:
    """run folder -> its models' refit.ckpt or best.ckpt, best family first (genre_cnn.models.families), then any other
    folder by name; only families that export to ONNX if `exportable`."""
    known = families.best_first()
    runs: dict[Path, list[Path]] = {}
    for model_dir in sorted(checkpoints.glob("*/*/")):
        if exportable and not (model_dir.name in known and known[model_dir.name].exportable):
            continue
        ckpt = Run.of_model_dir(model_dir).tested(model_dir.name)
        if ckpt is not None:
            runs.setdefault(model_dir.parent, []).append(ckpt)
    rank = {name: i for i, name in enumerate(known)}
    for found in runs.values():
        found.sort(key=lambda p: (rank.get(p.parent.name, len(rank)), p.parent.name))
    return runs


def _config_dataset(config: Path) -> str | None:
    """The dataset kind of a run's saved config.yaml, read as text (no YAML parser at start-up): `data: source:`'s
    class path (`...sources.demo.Demo` -> "demo"), or `data: dataset:` in runs of earlier versions; None if absent."""
    try:
        text = config.read_text(errors="replace")
    except OSError:
        return None
    in_data = False
    for line in text.splitlines():
        if line and not line[0].isspace():
            in_data = line.rstrip() == "data:"
        elif in_data and line.strip().startswith(("dataset:", "class_path:")):
            value = line.split(":", 1)[1].strip().strip("'\"")
            return value.rpartition(".")[2].lower() or None
    return None


def dataset_kind(ckpt: Path) -> str:
    """What a run's checkpoint was trained on: "generated" (the synthetic demo) or "real".

    In order: its run's runs/<run>/config.yaml (the Demo source is generated), beside checkpoints/; then the
    `dataset_kind` the checkpoint records, its data settings or, for a checkpoint that recorded none, a genre list
    equal to the demo's. Unreadable: "real" (the loader reports the problem when it is used).
    """
    kind = _config_dataset(Run.of_model_dir(ckpt.parent).config)
    if kind is not None:
        return "generated" if kind == "demo" else "real"
    try:
        import torch

        check_file(ckpt)
        checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    except Exception:  # noqa: BLE001 - not readable here; load_model says why if it is ever chosen
        return "real"
    if not isinstance(checkpoint, dict):
        return "real"
    if checkpoint.get("dataset_kind") in ("generated", "real"):
        return checkpoint["dataset_kind"]
    data = checkpoint.get("datamodule_hyper_parameters")
    if isinstance(data, dict) and isinstance(data.get("dataset"), str):
        return "generated" if data["dataset"] == "demo" else "real"
    from genre_cnn.data.demo import DEMO_GENRES

    genres = (checkpoint.get("hyper_parameters") or {}).get("genres")
    return "generated" if isinstance(genres, (list, tuple)) and tuple(genres) == tuple(DEMO_GENRES) else "real"


def latest_checkpoint(root: Path | None = None, model: str | None = None, exportable: bool = False,
                      real_only: bool = False) -> Path:
    """The most recent run's best model under `<root>/checkpoints/<run>/<model>/` (root: the project).

    The most recent run is the one whose newest checkpoint was written last; its model is `model` if it has
    one, else the best family (genre_cnn.models.families: musicnn > cnn > dense), refit.ckpt over best.ckpt.
    `exportable` only considers families that export to ONNX; `real_only` skips runs trained on generated clips
    (`dataset_kind`). Raises CheckpointError, saying to train first, if there is none.
    """
    from genre_cnn.paths import home

    checkpoints = Path(root or home()) / "checkpoints"
    runs = _run_checkpoints(checkpoints, exportable)
    if real_only:
        runs = {run: found for run, found in runs.items() if dataset_kind(found[0]) == "real"}
    if not runs:
        what = "exportable (CNN or musicnn) model" if exportable else "trained model"
        what = f"{what} trained on real music" if real_only else what
        raise CheckpointError(f"no {what} in {checkpoints}: run `python train.py` first "
                              "(or `python train.py --config configs/demo.yaml`), or pass --ckpt")
    latest = max(runs, key=lambda run: max(p.stat().st_mtime for p in runs[run]))
    return next((p for p in runs[latest] if p.parent.name == model), runs[latest][0])


def choose_default(root: Path | None = None, exportable: bool = False) -> tuple[Path, str]:
    """The checkpoint to use when none is given, and why, in a few words: the latest run trained on real music
    (`latest_checkpoint(real_only=True)`), else the ready model shipped in the repository (READY_MODEL)."""
    try:
        return latest_checkpoint(root, exportable=exportable, real_only=True), "the latest run on real music"
    except CheckpointError:
        if not READY_MODEL.is_file():
            raise
    try:
        skipped = latest_checkpoint(root, exportable=exportable)
    except CheckpointError:
        return READY_MODEL, "the ready model: no run trained on real music yet"
    return READY_MODEL, f"the ready model: {skipped.parent.parent.name} was trained on generated clips, skipped"


def default_checkpoint(root: Path | None = None, exportable: bool = False) -> Path:
    """The checkpoint `choose_default` picks."""
    return choose_default(root, exportable)[0]


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint file as given; for a folder, its one obvious checkpoint (refit.ckpt or best.ckpt of a model
    folder, the preferred model of a run folder, or its only .ckpt), else CheckpointError saying it is a folder."""
    if not path.is_dir():
        return path
    for name in Run.CHECKPOINTS:
        if (path / name).is_file():
            return path / name
    runs = _run_checkpoints(path.parent, exportable=False).get(path)
    if runs:
        return runs[0]
    found = sorted(path.glob("*.ckpt"))
    if len(found) == 1:
        return found[0]
    listed = ", ".join(p.name for p in found[:4]) or "none"
    raise CheckpointError(f"{path}: is a folder, not a checkpoint file; pass one of its .ckpt files ({listed})")
