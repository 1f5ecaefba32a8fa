"""Lists every model family: its classifier, what it trains on, its size and whether it exports to ONNX.

    python -m genre_cnn.models.families
"""

from genre_cnn.data.layout import GTZAN_GENRES
from genre_cnn.models import families

for family in families.all().values():
    model = family.build({"genres": list(GTZAN_GENRES)})
    print(f"{family.name}: {family.class_name} on its cached {model.cached!r} ({model.inputs}), "
          f"{sum(p.numel() for p in model.parameters()):,} parameters, "
          f"{'exports' if family.exportable else 'does not export'} to ONNX")
