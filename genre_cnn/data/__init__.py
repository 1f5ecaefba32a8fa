"""Datasets: the kinds of dataset (genre_cnn.data.sources), their layout on disk, downloads, the demo generator,
the feature cache, the track-level splits and a plain clip-index Dataset. No Lightning here."""
