"""The networks, the model families that wrap them (genre_cnn.models.families), the musicnn port and the safe
checkpoint loader. Plain torch: what prediction needs, without the training stack."""
