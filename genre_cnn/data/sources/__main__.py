"""Lists a dataset's genres and how many clips each has, after downloading or generating it if needed.

    python -m genre_cnn.data.sources KIND DATA_DIR        # KIND: gtzan, folder, demo or fma
"""

import sys
from collections import Counter
from pathlib import Path

from genre_cnn.data.sources import KINDS, open_source

if len(sys.argv) != 3 or sys.argv[1] not in KINDS:
    sys.exit(f"usage: python -m genre_cnn.data.sources {{{','.join(KINDS)}}} DATA_DIR")
source = open_source(sys.argv[1], Path(sys.argv[2]).expanduser())
source.ensure()
counts = Counter(clip.genre for clip in source.clips())
for genre in source.genres():
    print(f"{genre}: {counts[genre]} clips")
