"""What a user runs: the `genre-cnn` command line, the local web page, the library sorter and tagger, and
the plots. Never imports genre_cnn.training, except the command line's `train` subcommand."""
