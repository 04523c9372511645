"""Every SQL statement the Python side builds takes values as parameters, never as text.

The rule, checked on the source: an f-string that is SQL may interpolate only relation
names (`warehouse.relation(...)`), names checked by `sql_identifier`, module constants,
and local variables built from those. Values from config, files or the data go in as
`?` parameters. `warehouse.py` itself, where the identifier allow-list lives, is covered
by the warehouse tests (the SQL it sends to BigQuery is recorded and checked there).
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "cfap_orchestration"
SQL = re.compile(r"\b(SELECT|FROM|WHERE|INSERT|DELETE|JOIN|UNNEST|CREATE|ALTER)\b")
# The identifier allow-list's own module, and the API clients (GAQL, not SQL: its dates
# are `date.isoformat()` of the partition, the platform's language has no parameters).
EXEMPT = {"warehouse.py", "demo.py"}
EXEMPT_FOLDERS = {"connectors", "sandbox"}
SAFE_CALLS = {"relation", "table_id", "dataset", "sql_identifier", "_season_column"}
# (file, function, expression): why it is safe.
REVIEWED = {
    ("defs/analysis/jobs.py", "_results_query", "adhoc_model_name(config.method)"): (
        "a display-only query in the run's metadata, never executed; method is a Literal"
    ),
    ("defs/analysis/jobs.py", "_results_query", "design.subject"): (
        "display only; the subject is built from a registered experiment id or geo ids "
        "that resolve_request found in the catalog"
    ),
    ("defs/analysis/jobs.py", "_results_query", "config.metric"): "display only; a Literal",
    ("defs/analysis/jobs.py", "_results_query", "run_id"): "display only; Dagster's run id",
    ("studies/experiment_planning.py", "_latest_readouts", "registry"): (
        "the caller passes warehouse.relation() of the experiment registry"
    ),
}


def _assignments(function: ast.AST) -> dict[str, list[ast.expr]]:
    found: dict[str, list[ast.expr]] = {}
    for node in ast.walk(function):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                for name in ast.walk(target):
                    if isinstance(name, ast.Name):
                        found.setdefault(name.id, []).append(node.value)
        elif isinstance(node, (ast.For, ast.comprehension)):
            for name in ast.walk(node.target):
                if isinstance(name, ast.Name):
                    found.setdefault(name.id, []).append(node.iter)
    return found


def _safe(expr: ast.expr, assigned: dict[str, list[ast.expr]], depth: int = 0) -> bool:
    if depth > 6:
        return False
    if isinstance(expr, ast.Constant):
        return True
    if isinstance(expr, ast.Name):
        if expr.id.isupper():
            return True
        values = assigned.get(expr.id)
        return bool(values) and all(_safe(v, assigned, depth + 1) for v in values or [])
    if isinstance(expr, ast.Attribute):
        return isinstance(expr.value, ast.Name) and expr.value.id.isupper()  # TABLE.name
    if isinstance(expr, ast.Subscript):
        return _safe(expr.value, assigned, depth + 1)
    if isinstance(expr, (ast.Tuple, ast.List)):
        return all(_safe(e, assigned, depth + 1) for e in expr.elts)
    if isinstance(expr, ast.JoinedStr):
        parts = [v.value for v in expr.values if isinstance(v, ast.FormattedValue)]
        return all(_safe(p, assigned, depth + 1) for p in parts)
    if isinstance(expr, ast.Call) and isinstance(expr.func, (ast.Attribute, ast.Name)):
        name = expr.func.attr if isinstance(expr.func, ast.Attribute) else expr.func.id
        if name in SAFE_CALLS:
            return True
        if name == "join" and expr.args:
            return _safe_join(expr.args[0], assigned, depth)
        if name in ("values", "keys") and isinstance(expr.func, ast.Attribute):
            return _safe(expr.func.value, assigned, depth + 1)  # CONSTANT.values()
    return False


def _safe_join(argument: ast.expr, assigned: dict[str, list[ast.expr]], depth: int) -> bool:
    """`sep.join(...)` of safe parts, e.g. `", ".join("?" for _ in values)`."""
    if not isinstance(argument, (ast.GeneratorExp, ast.ListComp)):
        return _safe(argument, assigned, depth + 1)
    if _safe(argument.elt, assigned, depth + 1):
        return True  # e.g. one "?" per value, or a checked alias per value
    loop_names = {
        n.id for g in argument.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)
    }
    iterables_safe = all(_safe(g.iter, assigned, depth + 1) for g in argument.generators)
    inner = {**assigned, **{n: [ast.Constant("")] for n in loop_names}}  # CONSTANT's items
    return iterables_safe and _safe(argument.elt, inner, depth + 1)


def _sql_interpolations() -> Iterator[tuple[str, str, str, int]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE)
        if relative.name in EXEMPT or EXEMPT_FOLDERS & set(relative.parts):
            continue
        tree = ast.parse(path.read_text())
        for function in ast.walk(tree):
            if not isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            assigned = _assignments(function)
            for node in ast.walk(function):
                if not isinstance(node, ast.JoinedStr):
                    continue
                text = "".join(v.value for v in node.values if isinstance(v, ast.Constant))
                if not SQL.search(str(text)):
                    continue
                for part in node.values:
                    if isinstance(part, ast.FormattedValue) and not _safe(part.value, assigned):
                        yield str(relative), function.name, ast.unparse(part.value), node.lineno


def test_sql_strings_interpolate_only_checked_names() -> None:
    unsafe = [
        f"{file}:{line} in {function}(): {expression}"
        for file, function, expression, line in _sql_interpolations()
        if (file, function, expression) not in REVIEWED
    ]
    assert not unsafe, "values interpolated into SQL (pass them as ? parameters):\n" + "\n".join(
        unsafe
    )


def test_every_reviewed_exception_still_exists() -> None:
    found = {(file, function, expr) for file, function, expr, _ in _sql_interpolations()}
    assert set(REVIEWED) <= found, set(REVIEWED) - found


@pytest.mark.parametrize(
    ("source", "expected_unsafe"),
    [
        ("def f(w, x):\n    w.query(f\"SELECT * FROM t WHERE id = '{x}'\")\n", ["x"]),
        ("def f(w, x):\n    w.query(f\"SELECT * FROM {w.relation('raw', x)} WHERE a = ?\")\n", []),
        (
            'def f(w, xs):\n    p = ", ".join("?" for _ in xs)\n'
            '    w.query(f"SELECT * FROM t WHERE id IN ({p})")\n',
            [],
        ),
        (
            'def f(w, xs):\n    p = ", ".join(xs)\n'
            '    w.query(f"SELECT * FROM t WHERE id IN ({p})")\n',
            ["p"],
        ),
    ],
)
def test_the_rule_tells_a_value_from_a_relation(
    source: str, expected_unsafe: Sequence[str]
) -> None:
    function = ast.parse(source).body[0]
    assigned = _assignments(function)
    unsafe = [
        ast.unparse(part.value)
        for node in ast.walk(function)
        if isinstance(node, ast.JoinedStr)
        for part in node.values
        if isinstance(part, ast.FormattedValue) and not _safe(part.value, assigned)
    ]
    assert unsafe == list(expected_unsafe)
