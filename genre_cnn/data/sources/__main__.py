"""Lists a dataset's genres and how many clips each has, after downloading or generating it if needed.

    python -m genre_cnn.data.sources KIND DATA_DIR        # KIND: a Source class name (Gtzan, Folder, Demo, Fma, ...)
"""

import sys
from collections import Counter

from genre_cnn.data.sources import kinds
from genre_cnn.errors import run_command


def main() -> None:
    known = kinds()
    if len(sys.argv) != 3 or sys.argv[1] not in known:
        sys.exit(f"usage: python -m genre_cnn.data.sources {{{','.join(known)}}} DATA_DIR")
    source = known[sys.argv[1]](sys.argv[2])
    source.ensure()
    counts = Counter(clip.genre for clip in source.clips())
    for genre in source.genres():
        print(f"{genre}: {counts[genre]} clips")


sys.exit(run_command(main))
