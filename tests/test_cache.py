"""The feature cache: parallel build, bad files skipped and counted, resume after a real SIGKILL."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genre_cnn.audio.features import SpectralFeatures
from genre_cnn.audio.frontend import FrontEndConfig
from genre_cnn.data.cache import FeatureSettings, build_cache, entry_path, load_cache
from genre_cnn.data.layout import find_clips

SR = 22050
SETTINGS = FeatureSettings(clip_seconds=4.0)


def make_folder(root: Path, per_genre: int = 3, seconds: float = 4.0) -> Path:
    rng = np.random.default_rng(0)
    for g, freq in (("low", 110.0), ("high", 1760.0)):
        (root / g).mkdir(parents=True, exist_ok=True)
        t = np.arange(int(seconds * SR)) / SR
        for i in range(per_genre):
            y = 0.3 * np.sin(2 * np.pi * freq * (1 + 0.01 * i) * t) + 0.01 * rng.standard_normal(t.size)
            sf.write(root / g / f"{g}.{i:05d}.wav", y, SR)
    return root


@pytest.mark.slow  # a 2-process pool: each worker imports torch and librosa
def test_build_skips_bad_files_with_one_line_each_and_a_summary(tmp_path, caplog, capsys):
    root = make_folder(tmp_path / "audio")
    (root / "low" / "bad.wav").write_text("not audio")
    sf.write(root / "high" / "short.wav", np.ones(SR // 2) * 0.1, SR)
    clips = find_clips(root, ("low", "high"))
    with caplog.at_level(logging.WARNING):
        usable = build_cache(clips, tmp_path / "cache", SETTINGS, workers=2)
    assert "then 2 worker processes" in capsys.readouterr().err  # the bar says why it waits
    assert len(clips) == 8 and len(usable) == 6
    skipped = [r.message for r in caplog.records if r.message.startswith("skipped")]
    assert len(skipped) == 2 and all("\n" not in m for m in skipped)
    assert any("bad.wav: not an audio file" in m for m in skipped) and any("too short" in m for m in skipped)
    assert "2 of 8 file(s) skipped" in caplog.text
    spec, hand = load_cache(usable, tmp_path / "cache")
    assert spec.shape == (6, 140, 1 + 4 * SR // 512) and spec.dtype == np.float16
    assert hand.shape == (6, 91) and np.isfinite(hand).all()


def test_rebuild_does_no_work_and_an_edited_source_is_recomputed(tmp_path):
    root = make_folder(tmp_path / "audio")
    clips = find_clips(root, ("low", "high"))
    cache = tmp_path / "cache"
    build_cache(clips, cache, SETTINGS, workers=1, progress=False)
    stamps = {c.key: entry_path(cache, c).stat().st_mtime_ns for c in clips}
    build_cache(clips, cache, SETTINGS, workers=1, progress=False)
    assert stamps == {c.key: entry_path(cache, c).stat().st_mtime_ns for c in clips}
    time.sleep(0.01)
    sf.write(clips[0].path, np.zeros(5 * SR) + 0.2 * np.sin(np.arange(5 * SR)), SR)
    build_cache(clips, cache, SETTINGS, workers=1, progress=False)
    assert entry_path(cache, clips[0]).stat().st_mtime_ns != stamps[clips[0].key]
    assert entry_path(cache, clips[1]).stat().st_mtime_ns == stamps[clips[1].key]


def test_settings_and_source_change_the_cache_name():
    name = SETTINGS.cache_name("/music/gtzan")
    assert name.startswith("gtzan-") and "/" not in name  # a plain folder name, even for an absolute path
    other = FeatureSettings(SpectralFeatures(FrontEndConfig(n_mels=64)), clip_seconds=4.0)
    assert name != other.cache_name("/music/gtzan")
    assert name == FeatureSettings(clip_seconds=4.0).cache_name("/music/gtzan")
    assert name != SETTINGS.cache_name("/other/gtzan")


KILL_SCRIPT = """
import sys
from pathlib import Path
from genre_cnn.data.layout import find_clips
from genre_cnn.data.cache import FeatureSettings, build_cache
clips = find_clips(Path(sys.argv[1]), ("low", "high"))
build_cache(clips, Path(sys.argv[2]), FeatureSettings(clip_seconds=4.0), workers=int(sys.argv[3]), progress=False)
"""


def start_and_kill_part_way(root: Path, cache: Path, workers: int, whole_group: bool = True):
    """Starts a build of `root` in a new process group and SIGKILLs it once 5 clips are cached: the whole
    group (as `kill -9 -PGID` would), or only the parent (as the OOM killer would), which is then left
    unreaped (a zombie, as under a caller that has not waited for it yet) until the caller calls `reap()`.
    Returns (clips, the pids of the build's other processes, seen just before the kill, reap)."""
    proc = subprocess.Popen([sys.executable, "-c", KILL_SCRIPT, str(root), str(cache), str(workers)],
                            cwd=Path(__file__).resolve().parents[1], start_new_session=True)
    clips = find_clips(root, ("low", "high"))
    deadline = time.time() + 120
    while time.time() < deadline and sum(entry_path(cache, c).exists() for c in clips) < 5:
        time.sleep(0.05)
    children = descendants(proc.pid)
    if whole_group:
        os.killpg(proc.pid, signal.SIGKILL)
    else:
        os.kill(proc.pid, signal.SIGKILL)
        return clips, children, proc.wait
    proc.wait()
    return clips, children, proc.wait


def descendants(pid: int) -> set[int]:
    """Every live process below `pid` (children, their children, ...), from /proc."""
    parent = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)": state, ppid, ...
        except OSError:
            continue
        if fields[0] != "Z":
            parent[int(stat.parent.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")[:120]
    except OSError:
        return "?"


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])  # 2: the default forkserver pool, its workers killed with it
def test_killed_build_resumes_without_redoing_finished_clips(tmp_path, workers):
    root = make_folder(tmp_path / "audio", per_genre=40)
    cache = tmp_path / "cache"
    clips, _, _ = start_and_kill_part_way(root, cache, workers)
    done = {c.key: entry_path(cache, c).stat().st_mtime_ns for c in clips if entry_path(cache, c).exists()}
    assert 5 <= len(done) < len(clips), "the kill should land part-way"
    # A temporary file left by a killed writer (planted here: complete, with the source's stamp, as a kill
    # between writing and renaming leaves it, but with NaN features) is never read back as a finished clip.
    last = clips[-1]
    planted = entry_path(cache, last).parent / f".{entry_path(cache, last).name}.999.tmp"
    planted.parent.mkdir(parents=True, exist_ok=True)
    with np.load(entry_path(cache, next(c for c in clips if c.key in done))) as z:
        fake = {k: z[k] for k in z.files}
    fake["spec"] = np.full_like(fake["spec"], np.nan)
    fake["source"] = np.array([last.path.stat().st_size, last.path.stat().st_mtime_ns], dtype=np.int64)
    with open(planted, "wb") as f:
        np.savez(f, **fake)
    entry_path(cache, clips[-2]).write_bytes(b"truncated garbage")
    usable = build_cache(clips, cache, SETTINGS, workers=2, progress=False)
    assert len(usable) == len(clips)
    for key, mtime in done.items():
        clip = next(c for c in clips if c.key == key)
        if clip != clips[-2]:
            assert entry_path(cache, clip).stat().st_mtime_ns == mtime, f"{key} was recomputed"
    spec, hand = load_cache(usable, cache)  # every entry loads
    assert spec.shape == (len(clips), 140, 1 + 4 * SR // 512) and hand.shape == (len(clips), 91)
    assert np.isfinite(spec.astype(np.float32)).all() and np.isfinite(hand).all()
    fresh = build_cache([last], tmp_path / "fresh", SETTINGS, workers=1, progress=False)
    fresh_spec, fresh_hand = load_cache(fresh, tmp_path / "fresh")
    # the clip's own features, not the planted file's (to float32 rounding: 1 and 2 workers run torch with
    # different thread counts)
    np.testing.assert_allclose(spec[-1].astype(np.float32), fresh_spec[0].astype(np.float32), rtol=1e-3)
    np.testing.assert_allclose(hand[-1], fresh_hand[0], rtol=1e-5)


@pytest.mark.slow
def test_pool_workers_die_with_a_killed_parent(tmp_path):
    root = make_folder(tmp_path / "audio", per_genre=40)
    clips, children, reap = start_and_kill_part_way(root, tmp_path / "cache", workers=2, whole_group=False)
    assert len(children) >= 2, "the pool should be running at the kill"
    # a worker still importing (the parent computes the first clips meanwhile) watches for the parent once started
    deadline = time.time() + 120
    while time.time() < deadline and any(alive(p) for p in children):
        time.sleep(0.1)
    left = sorted(p for p in children if alive(p))
    commands = {p: cmdline(p) for p in left}
    reap()  # the killed parent stayed a zombie until now: its workers must not have waited for this
    for p in left:  # clean up what the killed run left behind: these are this test's processes
        os.kill(p, signal.SIGKILL)
    assert not left, f"{len(left)} process(es) of the killed build still alive 120 s later: {commands}"


def test_single_process_build_keeps_threads_follows_settings_and_drops_files_gone_bad(tmp_path):
    import torch

    root = make_folder(tmp_path / "audio", per_genre=1)
    clips = find_clips(root, ("low", "high"))
    threads = torch.get_num_threads()
    build_cache(clips, tmp_path / "a", SETTINGS, workers=1, progress=False)
    assert torch.get_num_threads() == threads  # training after caching keeps every core
    small = FeatureSettings(SpectralFeatures(FrontEndConfig(n_mels=64)), clip_seconds=4.0)
    build_cache(clips, tmp_path / "b", small, workers=1, progress=False)
    assert load_cache(clips, tmp_path / "b")[0].shape[1] == 64 + 12  # not the first build's front end
    time.sleep(0.01)
    clips[0].path.write_text("the file went bad")
    assert build_cache(clips, tmp_path / "a", SETTINGS, workers=1, progress=False) == clips[1:]
    assert not entry_path(tmp_path / "a", clips[0]).exists()  # its old features are not trained on


@pytest.mark.parametrize("workers", [1, 2])
def test_missing_musicnn_weights_are_one_error_before_any_clip_or_worker(tmp_path, monkeypatch, caplog, workers):
    import genre_cnn.data.cache as cache
    from genre_cnn.models.musicnn import INSTALL, MusicnnEmbeddings, WeightsNotFound

    monkeypatch.setenv("GENRE_CNN_HOME", str(tmp_path / "home"))  # no converted weights cached
    monkeypatch.setattr("importlib.util.find_spec", lambda name: None)  # and no wheel
    monkeypatch.setattr("genre_cnn.data.pool.ProcessPoolExecutor", lambda *a, **k: pytest.fail("workers were started"))
    monkeypatch.setattr(cache, "_EXTRACTOR", None)
    clips = find_clips(make_folder(tmp_path / "audio", per_genre=1), ("low", "high"))
    read = []
    monkeypatch.setattr("genre_cnn.audio.decode.load_audio", lambda *a, **k: read.append(a) or pytest.fail("clip read"))
    with caplog.at_level(logging.WARNING), pytest.raises(WeightsNotFound, match="musicnn weights not found") as err:
        build_cache(clips, tmp_path / "cache", FeatureSettings(MusicnnEmbeddings()), workers=workers, progress=False)
    assert INSTALL in str(err.value) and not read and "skipped" not in caplog.text


def test_an_entry_of_another_shape_or_unreadable_is_named_and_computed_again(tmp_path, monkeypatch, caplog):
    from genre_cnn.data import layout

    monkeypatch.setattr(layout, "_WARNED", set())
    clips = find_clips(make_folder(tmp_path / "audio", per_genre=2), ("low", "high"))
    cache = tmp_path / "cache"
    build_cache(clips, cache, SETTINGS, workers=1, progress=False)
    right = load_cache(clips, cache)[0].shape[1:]
    replaced, damaged = entry_path(cache, clips[1]), entry_path(cache, clips[2])
    with np.load(replaced) as z:  # its source stamp kept: only the shape tells it is wrong
        arrays = {name: z[name] for name in z.files}
    np.savez(replaced, **{**arrays, "spec": arrays["spec"][:, :50]})
    damaged.write_bytes(b"PK\x03\x04 not a whole zip")
    with caplog.at_level(logging.WARNING):
        assert build_cache(clips, cache, SETTINGS, workers=1, progress=False) == clips
    said = [r.getMessage() for r in caplog.records]
    odd = f"cache entry {replaced} holds hand of shape (91,), spec of shape (140, 50) where the others hold"
    assert [m for m in said if m.startswith(odd) and m.endswith("computed again")], said
    assert [m for m in said if m == f"cache entry {damaged}: not a readable cache entry (BadZipFile): computed again"]
    assert load_cache(clips, cache)[0].shape[1:] == right
    stamps = [entry_path(cache, c).stat().st_mtime_ns for c in clips]
    build_cache(clips, cache, SETTINGS, workers=1, progress=False)  # now all alike: nothing computed again
    assert stamps == [entry_path(cache, c).stat().st_mtime_ns for c in clips]


def test_an_entry_of_an_earlier_version_gets_its_fingerprint_and_keeps_its_features(tmp_path, monkeypatch):
    clips = find_clips(make_folder(tmp_path / "audio", per_genre=1), ("low", "high"))
    cache = tmp_path / "cache"
    build_cache(clips, cache, SETTINGS, workers=1, progress=False)
    entry = entry_path(cache, clips[0])
    with np.load(entry) as z:
        arrays = {name: z[name] for name in z.files if name != "fingerprint"}
    arrays["hand"] = arrays["hand"] + 1  # features only an extractor run would change back
    np.savez(entry, **arrays)  # as earlier versions wrote it: no fingerprint
    monkeypatch.setattr(SpectralFeatures, "__call__", lambda *a: pytest.fail("features computed again"))
    fingerprints = {}
    build_cache(clips, cache, SETTINGS, workers=1, progress=False, fingerprints=fingerprints)
    with np.load(entry) as z:
        assert np.array_equal(z["hand"], arrays["hand"]) and str(z["fingerprint"]) == fingerprints[clips[0].key]
    assert len(set(fingerprints.values())) == 2
