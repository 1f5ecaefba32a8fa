"""beets plugin: the genre of each track predicted from its audio by genre_cnn's model, on this machine.

    pip install "genre_cnn[beets]"       # then add `genrecnn` to `plugins:` in beets' config.yaml
    beet genrecnn [QUERY]                # predict and set the genre of the matching items
    beet genrecnn -f -p artist:Nina      # -f: replace genres items already have; -p: show, change nothing
    beet import ~/new-music              # with `auto: yes` (default), each imported track gets a genre

Options (config key `genrecnn`), as beets' own lastgenre: `auto`, `force`, `count` (up to this many genres...),
`min_confidence` (...each of at least this probability; an item whose top genre is below it is left alone),
`separator` (between several genres in the single `genre` field of beets before 2.14, whose `genres` field is
a list), `ckpt` (a checkpoint; default: the model `genre-cnn predict` uses), `engine` (auto, onnx or torch),
`max_windows` (at most this many windows per track). Each predicted item also gets the flexible attributes
`genre_cnn_probability` (of its top genre) and `genre_cnn_model`.

Files are written as beets decides: `beet genrecnn` writes tags when `import.write` is on (`-w` / `-W` override
it); on import, the plugin sets the fields and, once the importer has copied or moved the files, writes the
tags of the items it changed when `import.write` is on.
"""

from __future__ import annotations

import os
from pathlib import Path

from beets import config, plugins, ui
from beets.dbcore import types
from beets.library import Item

from genre_cnn.app.cli_parser import MIN_CONFIDENCE


class GenreCnnPlugin(plugins.BeetsPlugin):
    item_types = {"genre_cnn_probability": types.FLOAT}  # so `genre_cnn_probability:0.9..` is a numeric range

    def __init__(self) -> None:
        super().__init__()
        self.config.add({"auto": True, "force": False, "count": 1, "min_confidence": MIN_CONFIDENCE, "separator": ", ",
                         "ckpt": None, "engine": "auto", "max_windows": None})
        self._engine = None  # (spec, runner, model name), built on first use
        self._changed: set[int] = set()  # ids of items changed by the import stage, written after the files move
        if self.config["auto"].get(bool):
            self.import_stages = [self.imported]
            self.register_listener("import_task_files", self.write_imported)

    def engine(self):
        """The model, chosen and loaded once, as `genre-cnn predict` does."""
        if self._engine is None:
            from genre_cnn.app.cli import _choose, _engine
            from genre_cnn.app.tag import model_label

            ckpt = self.config["ckpt"].as_filename() if self.config["ckpt"].get() else None
            ckpt = Path(ckpt) if ckpt else None
            spec, runner = _engine(ckpt, self.config["engine"].as_choice(["auto", "onnx", "torch"]))
            self._engine = spec, runner, model_label(_choose(ckpt)[0])
        return self._engine

    @staticmethod
    def existing(item: Item) -> list[str]:
        value = item.get("genres") if "genres" in item.keys() else item.get("genre")
        values = value if isinstance(value, list) else [value] if value else []
        return [v for v in values if v]

    def set_genres(self, item: Item, genres: list[str]) -> None:
        if "genres" in Item._fields:  # beets 2.14 and later: a list, written as separate values
            item.genres = genres
        else:
            item.genre = self.config["separator"].as_str().join(genres)

    def predict(self, items: list[Item], workers: int | None = None) -> list[Item]:
        """Predicts and sets the genre of `items` (those that have one only with `force`); returns the changed."""
        from genre_cnn.app.library import predict_many

        force = self.config["force"].get(bool)
        items = [item for item in items if force or not self.existing(item)]
        if not items:
            return []
        count, floor = self.config["count"].get(int), self.config["min_confidence"].as_number()
        spec, runner, model = self.engine()
        paths = [Path(os.fsdecode(item.path)) for item in items]
        changed = []
        for item, (_, res, error) in zip(items, predict_many(spec, paths, count, self.config["max_windows"].get(),
                                                            workers or 1, False, runner, desc="genrecnn")):
            if error:
                self._log.warning("{}", error)
                continue
            chosen = [t for t in res["top"][:count] if t["probability"] >= floor]
            if not chosen:
                top = res["top"][0]
                self._log.info("{}: top genre {} ({:.2f}) is below min_confidence {}; left alone", item,
                               top["genre"], top["probability"], floor)
                continue
            self.set_genres(item, [t["genre"] for t in chosen])
            item["genre_cnn_probability"] = round(chosen[0]["probability"], 6)
            item["genre_cnn_model"] = model
            changed.append(item)
        return changed

    def commands(self) -> list[ui.Subcommand]:
        cmd = ui.Subcommand("genrecnn", help="predict genres from the audio with genre_cnn's model")
        cmd.parser.add_option("-f", "--force", dest="force", action="store_true", default=None,
                              help="replace genres items already have")
        cmd.parser.add_option("-p", "--pretend", action="store_true", help="show the genres, change nothing")
        cmd.parser.add_option("-w", "--write", dest="write", action="store_true", default=None,
                              help="write tags to the files (default: import.write)")
        cmd.parser.add_option("-W", "--nowrite", dest="write", action="store_false", help="don't write tags")
        cmd.parser.add_option("-j", "--workers", dest="workers", type="int", default=None,
                              help="worker processes (default: one per core)")
        cmd.func = self.command
        return [cmd]

    def command(self, lib, opts, args) -> None:
        if opts.force is not None:
            self.config["force"] = opts.force
        write = ui.should_write(opts.write)
        items = list(lib.items(args))
        for item in self.predict(items, workers=opts.workers or os.cpu_count()):
            ui.show_model_changes(item, fields=["genres", "genre", "genre_cnn_probability", "genre_cnn_model"])
            if not opts.pretend:
                item.try_sync(write=write, move=False)

    def imported(self, session, task) -> None:
        """Import stage: sets the fields and stores them; the files are written after they moved (below)."""
        for item in self.predict(list(task.imported_items())):
            item.store()
            self._changed.add(item.id)

    def write_imported(self, session, task) -> None:
        if not config["import"]["write"].get(bool):
            return
        for item in task.imported_items():
            if item.id in self._changed:
                item.try_write()
                self._changed.discard(item.id)
