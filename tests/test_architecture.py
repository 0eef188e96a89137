"""Size rules of the README's architecture: no module over 500 lines, no function or
method over 80 (migrations excluded: they are generated history, never edited).

The layer rules are import-linter's contracts (pyproject.toml, `make lint`)."""

from __future__ import annotations

import ast

from tests.helpers.system import REPO

SRC = REPO / "src" / "callwright"
MAX_MODULE_LINES = 500
MAX_FUNCTION_LINES = 80


def _modules() -> list[tuple[str, str]]:
    """(path relative to the package, source) of every module but the migrations."""
    return [
        (p.relative_to(SRC).as_posix(), p.read_text(encoding="utf-8"))
        for p in sorted(SRC.rglob("*.py"))
        if not p.relative_to(SRC).as_posix().startswith("storage/migrations/")
    ]


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, int]]:
    """(qualified name, lines) of every function and method, nested ones included."""
    found: list[tuple[str, int]] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            assert node.end_lineno is not None
            found.append((prefix + node.name, node.end_lineno - node.lineno + 1))
            found += _functions(node, f"{prefix}{node.name}.")
        elif isinstance(node, ast.ClassDef):
            found += _functions(node, f"{prefix}{node.name}.")
        else:
            found += _functions(node, prefix)
    return found


def test_the_package_is_found() -> None:
    # guards the rules below against passing on an empty walk
    paths = {path for path, _ in _modules()}
    assert {"sessions/runtime.py", "api/app.py", "audio/wav.py"} <= paths
    assert not any(p.startswith("storage/migrations/") for p in paths)


def test_no_module_over_500_lines() -> None:
    sizes = {path: len(text.splitlines()) for path, text in _modules()}
    over = {p: n for p, n in sizes.items() if n > MAX_MODULE_LINES}
    assert not over, "modules over 500 lines:\n" + "\n".join(
        f"  {p}: {n} lines" for p, n in sorted(over.items())
    )


def test_no_function_over_80_lines() -> None:
    over = {
        f"{path}:{name}": n
        for path, text in _modules()
        for name, n in _functions(ast.parse(text, path))
        if n > MAX_FUNCTION_LINES
    }
    assert not over, "functions over 80 lines:\n" + "\n".join(
        f"  {k}: {n} lines" for k, n in sorted(over.items())
    )


def test_the_measure_counts_a_function_from_def_to_its_last_line() -> None:
    source = "class A:\n    def f(self):\n        x = 1\n\n        return x\n"
    assert _functions(ast.parse(source)) == [("A.f", 4)]
