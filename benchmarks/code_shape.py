"""The package's shape in numbers: lines of code per layer, and its longest functions.

    .venv/bin/python benchmarks/code_shape.py                 # this checkout's genre_cnn/
    .venv/bin/python benchmarks/code_shape.py --top 15 PATH   # another copy's package folder

Lines are every line of every .py file (docstrings and comments included, as `wc -l` counts them); a function's
length runs from its `def` line to its last line (nested functions count in their parent too).
"""

from __future__ import annotations

import argparse
import ast
from collections import Counter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "genre_cnn"


def functions(path: Path) -> list[tuple[int, str]]:
    """(lines, "module:Class.function") of every function defined in `path`."""
    tree = ast.parse(path.read_text())
    found = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                found.append((child.end_lineno - child.lineno + 1, f"{prefix}{child.name}"))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(tree, "")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("package", type=Path, nargs="?", default=PACKAGE)
    parser.add_argument("--top", type=int, default=10)
    args = parser.parse_args()
    lines: Counter[str] = Counter()
    longest = []
    for path in sorted(args.package.rglob("*.py")):
        rel = path.relative_to(args.package)
        layer = rel.parts[0] if len(rel.parts) > 1 else "(top)"
        lines[layer] += len(path.read_text().splitlines())
        longest += [(n, f"{rel.as_posix()}:{name}") for n, name in functions(path)]
    print(f"{sum(lines.values())} lines in {args.package}: " + ", ".join(f"{k} {v}" for k, v in sorted(lines.items())))
    for n, name in sorted(longest, reverse=True)[: args.top]:
        print(f"{n:4d}  {name}")


if __name__ == "__main__":
    main()
