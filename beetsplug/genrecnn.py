"""beets plugin: the genre of each track predicted from its audio by genre_cnn's model, on this machine.

    pip install "genre_cnn[beets]"       # then add `genrecnn` to `plugins:` in beets' config.yaml
    beet genrecnn [QUERY]                # predict and set the genre of the matching items
    beet genrecnn -f -p artist:Nina      # -f: replace genres items already have; -p: show, change nothing
    beet import ~/new-music              # with `auto: yes` (default), each imported track gets a genre

Options (config key `genrecnn`), as beets' own lastgenre: `auto`, `force`, `count` (up to this many genres,
at least 1...), `min_confidence` (...each of at least this probability, 0 to 1; an item whose top genre is
below it is left alone), `separator` (between several genres in the single `genre` field of beets before
2.14, whose `genres` field is a list), `ckpt` (a checkpoint; default: the model `genre-cnn predict` uses),
`engine` (auto, onnx or torch), `max_windows` (at most this many windows per track, at least 1), `genre_map`
(a file of your own genre spellings, as `genre-cnn tag --genre-map`). They are checked as genre-cnn's command
line checks its own, and a bad one is one line through beets' own error. Genres are written in the usual
spellings (Hip-Hop, Jazz...; see genre_cnn.genres), and a genre that differs from the prediction only in
spelling counts as the same. Each item that gets a genre also gets the flexible attributes
`genre_cnn_probability` (of its top genre) and `genre_cnn_model`. The genres to write follow genre-cnn's one rule
(genre_cnn.inference.session.choose_genres): with a model that knows what it does not know, an item it judges "not
music" or "unfamiliar" gets no genre and its file is left alone; the library records the verdict in
`genre_cnn_verdict` and `genre_cnn_familiarity` (also for the items that get a genre), so
`beet ls genre_cnn_verdict:"not music"` lists them. `beet genrecnn` ends with `N set, M kept, K below the
threshold` (and `, J not music or unfamiliar: left alone` when there are such items).

Files are written as beets decides: `beet genrecnn` writes tags when `import.write` is on (`-w` / `-W` override
it); on import, the plugin sets the fields and, once the importer has copied or moved the files, writes the
tags of the items it changed when `import.write` is on.
"""

from __future__ import annotations

import os
from collections import Counter
from pathlib import Path

from beets import config, plugins, ui
from beets.dbcore import types
from beets.library import Item

from genre_cnn.app.cli_parser import MIN_CONFIDENCE

FIELDS = ["genre_cnn_probability", "genre_cnn_model", "genre_cnn_verdict", "genre_cnn_familiarity"]  # flexible


class GenreCnnPlugin(plugins.BeetsPlugin):
    # numeric, so that `genre_cnn_probability:0.9..` is a range
    item_types = {"genre_cnn_probability": types.FLOAT, "genre_cnn_familiarity": types.FLOAT}

    def __init__(self) -> None:
        super().__init__()
        self.config.add({"auto": True, "force": False, "count": 1, "min_confidence": MIN_CONFIDENCE, "separator": ", ",
                         "ckpt": None, "engine": "auto", "max_windows": None, "genre_map": None})
        self._predictor = None  # genre_cnn's prediction session, opened on first use
        self._settings = None  # the checked options, read on first use
        self._changed: set[int] = set()  # ids of items changed by the import stage, written after the files move
        if self.config["auto"].get(bool):
            self.import_stages = [self.imported]
            self.register_listener("import_task_files", self.write_imported)

    def _option(self, key: str, kind: type, low: float, high: float | None = None, optional: bool = False):
        """One option of the right type within [low, high] (None only if `optional`), else ui.UserError."""
        import confuse

        if optional and self.config[key].get() is None:
            return None
        try:
            value = self.config[key].get(kind)
        except confuse.ConfigError as err:
            raise ui.UserError(f"genrecnn: {err}") from None
        if isinstance(value, bool) or value < low or (high is not None and value > high):
            span = f"at least {low:g}" if high is None else f"between {low:g} and {high:g}"
            raise ui.UserError(f"genrecnn: {key}: {value} is not allowed: give a number {span}")
        return value

    def settings(self) -> dict:
        """The options, checked once as genre-cnn's command line checks its own (ui.UserError otherwise)."""
        if self._settings is None:
            from genre_cnn.errors import GenreCnnError
            from genre_cnn.genres import load_mapping
            from genre_cnn.inference.session import ENGINES, choose_checkpoint

            engine = self.config["engine"].as_str()
            if engine not in ENGINES:
                raise ui.UserError(f"genrecnn: engine: {engine!r} is not one of {', '.join(ENGINES)}")
            ckpt = Path(self.config["ckpt"].as_filename()) if self.config["ckpt"].get() else None
            mapping = self.config["genre_map"].as_filename() if self.config["genre_map"].get() else None
            try:
                if ckpt is not None:  # checked before anything reads it, as genre-cnn's --ckpt
                    choose_checkpoint(ckpt)
                mapping = load_mapping(Path(mapping)) if mapping else None
            except GenreCnnError as err:
                raise ui.UserError(f"genrecnn: {err}") from None
            self._settings = {"count": self._option("count", int, 1),
                              "max_windows": self._option("max_windows", int, 1, optional=True),
                              "min_confidence": float(self._option("min_confidence", float, 0.0, 1.0)),
                              "separator": self.config["separator"].as_str(), "engine": engine,
                              "ckpt": ckpt, "mapping": mapping}
        return self._settings

    def predictor(self):
        """genre_cnn's Predictor, opened once as `genre-cnn predict` opens it; ui.UserError if it cannot be."""
        if self._predictor is None:
            from genre_cnn.errors import GenreCnnError
            from genre_cnn.inference.session import Predictor

            try:
                self._predictor = Predictor.open(self.settings()["ckpt"], self.settings()["engine"])
            except GenreCnnError as err:
                raise ui.UserError(f"genrecnn: {err}") from None
        return self._predictor

    @staticmethod
    def existing(item: Item) -> list[str]:
        value = item.get("genres") if "genres" in item.keys() else item.get("genre")
        values = value if isinstance(value, list) else [value] if value else []
        return [v for v in values if v]

    def set_genres(self, item: Item, genres: list[str]) -> None:
        if "genres" in Item._fields:  # beets 2.14 and later: a list, written as separate values
            item.genres = genres
        else:
            item.genre = self.settings()["separator"].join(genres)

    def predict(self, items: list[Item], workers: int | None = None) -> tuple[list[Item], list[Item], Counter]:
        """Predicts the genre of `items` (those that have one only with `force`) and applies genre_cnn's rule
        (genre_cnn.inference.session.choose_genres). Returns the items whose genres were set, those only marked
        with the model's verdict (not music or unfamiliar: their genres and files are left alone), and the counts
        {"set", "kept", "below", "not_music", "failed"}."""
        from genre_cnn.genres import display, same
        from genre_cnn.inference.session import choose_genres, verdict, verdict_text

        settings, force = self.settings(), self.config["force"].get(bool)
        counts = Counter(set=0, kept=0, below=0, not_music=0, failed=0)
        todo = [item for item in items if force or not self.existing(item)]
        counts["kept"] = len(items) - len(todo)
        changed, marked = [], []
        if not todo:
            return changed, marked, counts
        predictor = self.predictor()
        paths = [Path(os.fsdecode(item.path)) for item in todo]
        answers = predictor.predict_many(paths, settings["count"], settings["max_windows"], workers or 1, False,
                                         desc="genrecnn")
        for item, (_, res, error) in zip(todo, answers):
            if error:
                self._log.warning("{}", error)
                counts["failed"] += 1
                continue
            decision, music = choose_genres(res, settings["count"], settings["min_confidence"]), verdict(res)
            judged = {}  # the model's verdict, for a model that has one
            if music:
                judged = {"genre_cnn_verdict": music["verdict"],
                          "genre_cnn_familiarity": round(music["familiarity"], 6)}
            if decision.reason == "below":
                self._log.info("{}: top genre {} ({:.2f}) is below min_confidence {}; left alone", item,
                               display(decision.top["genre"], settings["mapping"]), decision.top["probability"],
                               settings["min_confidence"])
                counts["below"] += 1
            elif not decision.genres:
                self._log.info("{}: {}; left alone", item, verdict_text(res))
                counts["not_music"] += 1
                item.update(judged)
                marked.append(item)
            elif same(self.existing(item), genres := [display(t["genre"], settings["mapping"])
                                                      for t in decision.genres]):
                counts["kept"] += 1
            else:
                self.set_genres(item, genres)
                item.update({"genre_cnn_probability": round(decision.genres[0]["probability"], 6),
                             "genre_cnn_model": predictor.label, **judged})
                changed.append(item)
                counts["set"] += 1
        return changed, marked, counts

    @staticmethod
    def summary(counts: Counter) -> str:
        return (f"genrecnn: {counts['set']} set, {counts['kept']} kept, {counts['below']} below the threshold"
                + (f", {counts['not_music']} not music or unfamiliar: left alone" if counts["not_music"] else "")
                + (f", {counts['failed']} could not be read" if counts["failed"] else ""))

    def commands(self) -> list[ui.Subcommand]:
        cmd = ui.Subcommand("genrecnn", help="predict genres from the audio with genre_cnn's model")
        cmd.parser.usage = "%prog [options] [QUERY]"
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
        if opts.workers is not None and opts.workers < 1:
            raise ui.UserError(f"genrecnn: --workers {opts.workers} is not allowed: give a number at least 1")
        self.settings()
        write = ui.should_write(opts.write)
        items = list(lib.items(args))
        changed, marked, counts = self.predict(items, workers=opts.workers or os.cpu_count())
        for item in changed:
            ui.show_model_changes(item, fields=["genres", "genre", *FIELDS])
            if not opts.pretend:
                item.try_sync(write=write, move=False)
        for item in marked:  # its verdict, in the library only: the file is left as it is
            ui.show_model_changes(item, fields=FIELDS[2:])
            if not opts.pretend:
                item.store()
        ui.print_(self.summary(counts) + (" (pretend: nothing changed)" if opts.pretend else ""))

    def imported(self, session, task) -> None:
        """Import stage: sets the fields and stores them; the files are written after they moved (below)."""
        changed, marked, counts = self.predict(list(task.imported_items()))
        for item in [*changed, *marked]:
            item.store()
        self._changed.update(item.id for item in changed)
        self._log.info("{}", self.summary(counts))

    def write_imported(self, session, task) -> None:
        if not config["import"]["write"].get(bool):
            return
        for item in task.imported_items():
            if item.id in self._changed:
                item.try_write()
                self._changed.discard(item.id)
