"""benchmarks/gpu_check.py, the GPU check: without a GPU one line and exit 0; its every step runs on the CPU; its
comparisons see a difference and its verdicts hold it to the tolerance."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_it_says_so_in_one_line_and_exits_0():
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}  # no GPU, whatever the machine has
    proc = subprocess.run([sys.executable, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("\n") == 1 and proc.stdout.startswith("gpu_check: no GPU here"), proc.stdout
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_every_step_runs_on_the_cpu_and_passes(tmp_path):
    out = tmp_path / "gpu_check.txt"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    rows = {line.split("  ")[0]: line for line in out.read_text().splitlines()[3:-1]}
    assert list(rows) == ["train the CNN, 32-true", "train the CNN, bf16-mixed", "front end, log-mel (dB) / chroma",
                          "predict, the CNN just trained", "predict, the ready model",
                          "predict, the ready model, bf16 autocast",
                          "ONNX Runtime, CPUExecutionProvider, the ready model", "DDP, 2 devices"]
    held = [line for name, line in rows.items() if not name.startswith("DDP") and "autocast" not in name]
    assert all(line.rstrip().endswith("yes") for line in held), rows
    assert "skipped: --ddp not given" in rows["DDP, 2 devices"]  # DDP on CPU processes: tests/test_ondisk.py
    assert "same top genre 2/2" in rows["predict, the ready model"]
    assert out.read_text().splitlines()[-1].endswith("; 0 failed") and out.read_text() in proc.stdout + "\n"
    assert "(reported)" in rows["predict, the ready model, bf16 autocast"]


def test_the_comparison_sees_a_difference_and_the_verdict_holds_it_to_the_tolerance():
    import torch

    from genre_cnn.models.families.cnn import WindowClassifier

    check = gpu_check()
    torch.manual_seed(0)
    model = WindowClassifier(["a", "b", "c"], widths=(8, 8)).eval()
    waves = [torch.randn(22050 * 4) * 0.1 for _ in range(2)]
    worst, same, _ = check.same_answers(model, waves, "cpu")
    assert (worst, same) == (0.0, 2)  # the same device and precision: the same numbers
    worst, same, _ = check.same_answers(model, waves, "cpu", bf16=True)
    assert 0 < worst < 0.2  # bf16 moves the probabilities, and the comparison sees it
    assert check.verdict(worst, check.PROB_TOL, same, 2) == "NO"
    assert check.verdict(5e-5, 1e-4, 2, 2) == "yes"
    assert check.verdict(5e-5, 1e-4, 1, 2) == "NO"  # a clip whose top genre moved
    assert check.same_features(model, waves, "cpu") == (0.0, 0.0)
