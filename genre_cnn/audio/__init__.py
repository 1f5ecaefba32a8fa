"""Sound in, numbers out: decoding any audio file, the shared front end (log-mel + chroma) and the hand-crafted
features. Used by training and prediction alike."""
