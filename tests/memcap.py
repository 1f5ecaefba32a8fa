"""A helper for memory-bound tests: run Python code in a child process whose address space is capped.

    from tests.memcap import run_capped
    result = run_capped("from genre_cnn.audio.decode import load_capped; ...", headroom_mb=300)

The child runs `setup` (imports, a model), then caps its address space (RLIMIT_AS) at what it already has
plus `headroom_mb`, then runs `code`: an allocation past the cap fails there with MemoryError, so the bound
is asserted without any timing. Returns the CompletedProcess (stdout, stderr, returncode).
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

PRELUDE = """
import resource
def _vm_bytes():
    for line in open("/proc/self/status"):
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
"""


def run_capped(code: str, headroom_mb: int, setup: str = "") -> subprocess.CompletedProcess:
    script = "\n".join([PRELUDE, textwrap.dedent(setup),
                        f"_cap = _vm_bytes() + {headroom_mb} * 2**20",
                        "resource.setrlimit(resource.RLIMIT_AS, (_cap, _cap))", textwrap.dedent(code)])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MALLOC_ARENA_MAX": "2", "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300,
                          cwd=ROOT)
