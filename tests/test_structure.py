"""The package's shape: no import cycles, inference and the app apart from the training stack, a docstring atop
every module, every config parses."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "genre_cnn"


def module_name(path: Path) -> str:
    """genre_cnn/app/cli.py -> genre_cnn.app.cli; a package's __init__.py -> the package."""
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the package, sub-packages included, by dotted name (__main__ modules left out)."""
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if p.stem != "__main__"}


def import_graph() -> dict[str, set[str]]:
    """genre_cnn module -> the genre_cnn modules it imports anywhere in its source (function bodies too)."""
    known = modules()
    graph: dict[str, set[str]] = {}
    for name, path in known.items():
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("genre_cnn"):
                deps.add(node.module)
                deps |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in known}
            elif isinstance(node, ast.Import):
                deps |= {a.name for a in node.names if a.name.startswith("genre_cnn.")}
        graph[name] = deps - {name, "genre_cnn"}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for dep in sorted(graph.get(node, ())):
            if state.get(dep) == 1:
                return path[path.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_find_cycle_sees_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert {"genre_cnn.inference.predict", "genre_cnn.models.families.cnn"} <= set(graph) and len(graph) > 40
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


# (importer, imported): the one place where the user-facing side reaches the training stack, and why
TRAINING_ALLOWED = {("genre_cnn.app.cli", "genre_cnn.training.train")}  # `genre-cnn train` runs train.py's main


def reaches_training(graph: dict[str, set[str]]) -> list[str]:
    """Imports from genre_cnn.inference or genre_cnn.app into genre_cnn.training, but those allowed."""
    return sorted(f"{src} imports {dep}" for src, deps in graph.items() for dep in deps
                  if src.startswith(("genre_cnn.inference", "genre_cnn.app")) and dep.startswith("genre_cnn.training")
                  and (src, dep) not in TRAINING_ALLOWED)


def test_inference_and_the_app_never_import_the_training_stack():
    graph = import_graph()
    assert reaches_training(graph) == []
    assert ("genre_cnn.app.cli", "genre_cnn.training.train") in {(s, d) for s, ds in graph.items() for d in ds}
    graph["genre_cnn.inference.predict"].add("genre_cnn.training.calibration")  # and a new such import is seen
    assert reaches_training(graph) == ["genre_cnn.inference.predict imports genre_cnn.training.calibration"]


def undocumented(package: Path) -> list[str]:
    """The modules under `package` (sub-packages too) that do not open with a docstring whose first line says
    what the module is for."""
    missing = []
    for path in sorted(package.rglob("*.py")):
        doc = ast.get_docstring(ast.parse(path.read_text(), filename=str(path)))
        if not doc or not doc.splitlines()[0].strip():
            missing.append(path.relative_to(package.parent).as_posix())
    return missing


def test_every_module_opens_with_a_docstring(tmp_path):
    assert undocumented(PACKAGE) == []
    (tmp_path / "pkg" / "sub").mkdir(parents=True)  # and the check sees a missing one, in a sub-package too
    (tmp_path / "pkg" / "ok.py").write_text('"""What it is for.\n\n    usage\n"""\n')
    (tmp_path / "pkg" / "sub" / "late.py").write_text('import os\n\n"""Not first: not a docstring."""\n')
    assert undocumented(tmp_path / "pkg") == ["pkg/sub/late.py"]


def test_every_module_imports_cleanly_in_a_fresh_process():
    code = "import importlib, sys\nfor m in sys.argv[1:]: importlib.import_module(m)"
    proc = subprocess.run([sys.executable, "-c", code, *modules()], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_the_prediction_path_does_not_import_the_training_stack():
    runtime = [m for m in modules() if m.startswith(("genre_cnn.inference", "genre_cnn.app", "genre_cnn.models"))]
    assert "genre_cnn.app.serve" in runtime and "genre_cnn.models.families.musicnn" in runtime
    code = (f"import sys\nimport {', '.join(runtime)}\n"
            "heavy = sorted(m for m in sys.modules if m.split('.')[0] in ('lightning', 'torchmetrics', 'tensorboard',"
            " 'jsonargparse') or m.startswith('genre_cnn.training'))\nprint(heavy)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


@pytest.mark.parametrize("config", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_config_builds_through_the_cli_parser(config):
    from genre_cnn.models import families
    from genre_cnn.training.lit import build_module
    from genre_cnn.training.train import build_parser, check_settings

    parser = build_parser()
    cfg = parser.parse_args(["--config", str(config)])
    frontend, dm = check_settings(parser, cfg)  # every option checked, nothing read or written
    assert dm.window == frontend.window_frames(cfg.data.window_seconds)
    for name in cfg.models:
        model = build_module(families.get(name), ["a", "b", "c"], frontend, vars(cfg[name]))
        assert model.model.genres == ["a", "b", "c"]


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_every_third_party_import_is_declared_in_pyproject():
    """`pip install .` must bring everything the package imports (an extra for the optional parts)."""
    tomllib = pytest.importorskip("tomllib")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = project["dependencies"] + sum(project["optional-dependencies"].values(), [])
    declared = {canonical(re.match(r"[A-Za-z0-9_.-]+", r).group()) for r in requirements}
    imported: set[str] = set()
    for path in modules().values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {a.name.split(".")[0] for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"genre_cnn", "__future__"}
    assert {"soxr", "audioread", "yaml", "platformdirs", "torch"} <= third_party
    # installed by setup.sh with --no-deps, its own dependencies declared in the `stream` extra (see pyproject.toml)
    no_deps = {"litdata"}
    setup = (REPO / "setup.sh").read_text()
    assert all(re.search(rf"--no-deps \"{m}==", setup) for m in no_deps)
    dists = importlib.metadata.packages_distributions()
    missing = {m: dists.get(m) for m in third_party - no_deps
               if not {canonical(d) for d in dists.get(m, [])} & declared}
    assert not missing, f"imported but not declared in pyproject.toml: {missing}"


def test_the_ready_recipe_is_a_train_py_config_that_ships_the_ready_model():
    from genre_cnn.models.checkpoint import READY_MODEL
    from genre_cnn.paths import resolve
    from genre_cnn.training.train import build_parser, check_settings

    parser = build_parser()
    cfg = parser.parse_args(["--config", str(REPO / "configs" / "ready.yaml")])
    _, dm = check_settings(parser, cfg)
    assert resolve(cfg.ship) == READY_MODEL and cfg.models == ["musicnn"]
    assert dm.split_kind == "groups" and [d.name for d in dm.source.data_dirs] == ["gtzan_mini", "gtzan_unseen"]
    assert cfg.musicnn.balanced and cfg.musicnn.members == 5 and cfg.trainer.max_steps == 750


def layout_section(readme: str) -> str:
    return readme.split("\n## Layout\n", 1)[1].split("\n## ", 1)[0]


def layout_mismatch(readme: str, package: Path) -> tuple[list[str], list[str]]:
    """(modules under `package` that the README's Layout section never names, paths it names that do not exist).
    A module is named by its path under the package in backticks, `audio/decode.py`; __init__.py files need not be."""
    named = set(re.findall(r"`([a-z_/]+\.py)`", layout_section(readme)))
    present = {p.relative_to(package).as_posix() for p in package.rglob("*.py")}
    missing = sorted(m for m in present if m not in named and not m.endswith("__init__.py"))
    stale = sorted(n for n in named if n not in present and not (package.parent / n).is_file())
    return missing, stale


def test_the_readme_layout_names_every_module_and_nothing_else(tmp_path):
    assert layout_mismatch((REPO / "README.md").read_text(), PACKAGE) == ([], [])
    (tmp_path / "pkg" / "sub").mkdir(parents=True)  # and the check sees both kinds of mismatch
    for name in ("__init__.py", "sub/__init__.py", "sub/new.py", "old.py"):
        (tmp_path / "pkg" / name).write_text('"""x"""\n')
    readme = "# x\n\n## Layout\n\n| `old.py` | x |\n| `sub/gone.py` | y |\n\n## Licence\n`sub/new.py`\n"
    assert layout_mismatch(readme, tmp_path / "pkg") == (["sub/new.py"], ["sub/gone.py"])


def borrowed_private_names(paths: list[Path]) -> list[str]:
    """`file: module.name` for each private name (one leading underscore) imported from a genre_cnn module."""
    found = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("genre_cnn"):
                found += [f"{path}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and not a.name.startswith("__")]
    return found


def test_no_caller_borrows_a_private_name_of_another_module(tmp_path):
    callers = [*PACKAGE.rglob("*.py"), *(REPO / "beetsplug").glob("*.py"), *(REPO / "benchmarks").glob("*.py"),
               *(REPO / "docs").glob("*.py")]
    assert borrowed_private_names(callers) == []
    (tmp_path / "plugin.py").write_text("from genre_cnn.app.cli import _choose, main\n")
    assert len(borrowed_private_names([tmp_path / "plugin.py"])) == 1
