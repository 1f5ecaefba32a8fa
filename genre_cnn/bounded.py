"""A whole track through a model in bounded memory: the network sees its windows a batch at a time.

    from genre_cnn.bounded import track_probs
    probs, window_probs = track_probs(model, torch.from_numpy(y))     # y: (samples,) at model.sample_rate

Used by the web page and the plots, which show every window of a file the user hands over. The classifiers'
own `predict_waveform` runs all windows of a track in one batch (one ONNX graph for any length); here a
14.5-min track's 290 musicnn patches or 600 CNN windows go BATCH at a time, so the network's activations
take the same memory for any length. The front end still runs on the whole waveform: its memory grows with
the length, which the callers cap (`genre_cnn.audio.load_capped`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

BATCH = 16  # windows or patches per forward pass


@torch.no_grad()
def track_probs(model, waveform: torch.Tensor, batch: int = BATCH,
                check: Callable[[], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Mono waveform (samples,) at `model.sample_rate` -> (probabilities (n,), window probabilities (K, n)).

    The probabilities are the model's own for the track (as `predict_waveform`: the mean of the CNN's windows,
    musicnn's head on the mean patch embedding); `check()` runs after every batch and may raise to stop.
    """
    from genre_cnn.classifiers import MusicnnClassifier, WindowClassifier
    from genre_cnn.musicnn import cut_patches

    def batches(inputs: torch.Tensor, run: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
        out = []
        for start in range(0, len(inputs), batch):
            out.append(run(inputs[start:start + batch]))
            if check is not None:
                check()
        return torch.cat(out)

    def probs(logits: torch.Tensor) -> torch.Tensor:  # (b, n) -> (b, n), calibrated as the model's own
        return (logits / model.temperature).softmax(-1)

    device = model.frontend.hann.device
    if isinstance(model, MusicnnClassifier):
        patches = cut_patches(model.frontend(waveform.to(device)[None]))[0]  # (P, 187, 96)

        def embed(x: torch.Tensor) -> torch.Tensor:
            out = model.backbone(x)
            return torch.cat([out["penultimate"], out["logits"]], dim=1)  # (b, 250), as patch_embeddings

        emb = batches(patches, embed)  # (P, 250)
        return probs(model(emb.mean(dim=0, keepdim=True)))[0].cpu(), probs(model(emb)).cpu()
    if isinstance(model, WindowClassifier):
        windows = model.track_inputs(waveform)  # (K, C, W)
        window_probs = batches(windows, lambda x: probs(model(x))).cpu()  # (K, n)
        return window_probs.mean(dim=0), window_probs
    window_probs = model.window_probs(waveform).cpu()  # (1, n): a model that sees one clip-long vector
    return window_probs.mean(dim=0), window_probs
