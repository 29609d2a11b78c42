"""A lint for assertions that cannot fail (issue 12), on every tests/**/test_*.py: each hit is named file:line.

It finds the mechanical forms only; vacuous loops, loose bounds and self-made oracles need a reader."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
BROAD = {"Exception", "BaseException"}
SWALLOWING = {"AssertionError", "BaseException"}
CHECKING_CALL = re.compile(r"^(raises|warns|fail|assert_\w*|wait_until\w*)$")  # calls that can fail a test


def _name(node: ast.AST) -> str:
    return node.id if isinstance(node, ast.Name) else node.attr if isinstance(node, ast.Attribute) else ""


def _asserts(tree):
    return (n for n in ast.walk(tree) if isinstance(n, ast.Assert))


def _tests(tree):
    return (n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef) and n.name.startswith("test_"))


def constant_assert(tree):
    for a in _asserts(tree):  # `assert False` can fail; a true literal or a non-empty tuple cannot
        t = a.test
        if isinstance(t, ast.Constant) and t.value or isinstance(t, (ast.Tuple, ast.List)) and t.elts:
            yield a.lineno, "assert on a true literal"


def same_both_sides(tree):
    for a in _asserts(tree):
        for c in (n for n in ast.walk(a.test) if isinstance(n, ast.Compare) and len(n.ops) == 1):
            sides = c.left, c.comparators[0]
            pure = not any(isinstance(n, ast.Call) for s in sides for n in ast.walk(s))  # two calls may differ
            reflexive = isinstance(c.ops[0], (ast.Eq, ast.Is, ast.GtE, ast.LtE))
            if pure and reflexive and ast.dump(sides[0]) == ast.dump(sides[1]):
                yield c.lineno, "the same expression on both sides"


def or_true(tree):
    for a in _asserts(tree):
        for b in (n for n in ast.walk(a.test) if isinstance(n, ast.BoolOp) and isinstance(n.op, ast.Or)):
            if any(isinstance(v, ast.Constant) and v.value for v in b.values):
                yield b.lineno, "`or` a true literal"


def len_at_least_zero(tree):
    for c in (n for n in ast.walk(tree) if isinstance(n, ast.Compare) and len(n.ops) == 1):
        left, op, right = c.left, c.ops[0], c.comparators[0]
        if isinstance(op, ast.LtE):
            left, op, right = right, ast.GtE(), left
        if isinstance(op, ast.GtE) and _name(getattr(left, "func", left)) == "len" and \
                isinstance(right, ast.Constant) and right.value == 0:
            yield c.lineno, "len(...) >= 0"


def broad_raises(tree):
    for c in (n for n in ast.walk(tree) if isinstance(n, ast.Call) and _name(n.func) == "raises" and n.args):
        kinds = c.args[0].elts if isinstance(c.args[0], ast.Tuple) else [c.args[0]]
        if any(_name(k) in BROAD for k in kinds):
            yield c.lineno, "pytest.raises(Exception): name the exception a failure raises"


def no_check(tree):
    for t in _tests(tree):
        body = list(ast.walk(t))
        if not any(isinstance(n, ast.Assert) or isinstance(n, ast.Call) and CHECKING_CALL.match(_name(n.func))
                   for n in body):
            yield t.lineno, f"{t.name} asserts nothing"


def swallowed(tree):
    for t in _tests(tree):
        for h in (n for n in ast.walk(t) if isinstance(n, ast.ExceptHandler)):
            kinds = h.type.elts if isinstance(h.type, ast.Tuple) else [h.type]
            if h.type is None or any(_name(k) in SWALLOWING for k in kinds):
                yield h.lineno, "an except that swallows a failed assert"


RULES = [constant_assert, same_both_sides, or_true, len_at_least_zero, broad_raises, no_check, swallowed]


def hits(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    return [f"{path.name}:{line}: {why}" for rule in RULES for line, why in rule(tree)]


def test_no_test_file_holds_an_assertion_that_cannot_fail():
    files = sorted(TESTS.rglob("test_*.py"))
    assert Path(__file__).resolve() in files  # the glob looks where the suite is
    found = [hit for path in files for hit in hits(path)]
    assert found == [], "\n".join(found)


@pytest.mark.parametrize("rule, flagged, clean", [
    (constant_assert, 'assert (x == 1, "x is one")', 'assert x == 1, "x is one"'),
    (constant_assert, 'assert "always"', "assert False, 'unreachable'"),
    (same_both_sides, "assert rows[0] == rows[0]", "assert encode(x) == encode(x)"),
    (or_true, "assert ok(x) or True", "assert ok(x) or ok(y)"),
    (len_at_least_zero, "assert 0 <= len(rows)", "assert len(rows) >= 1"),
    (broad_raises, "with pytest.raises((KeyError, Exception)): f()", "with pytest.raises(KeyError): f()"),
    (no_check, "def test_a():\n    f()", "def test_a():\n    with pytest.raises(KeyError):\n        f()"),
    (no_check, "def test_a():\n    f()", "def test_a():\n    assert_all_inside(f())"),
    (swallowed, "def test_a():\n    try:\n        assert f()\n    except AssertionError:\n        pass",
     "def test_a():\n    try:\n        f()\n    except KeyError:\n        pass\n    assert g()"),
    (swallowed, "def test_a():\n    try:\n        assert f()\n    except:\n        pass",
     "try:\n    f()\nexcept:\n    pass"),  # outside a test: not flagged
])  # fmt: skip
def test_each_rule_flags_its_form_and_passes_a_real_check(rule, flagged, clean):
    assert len(list(rule(ast.parse(flagged)))) == 1
    assert list(rule(ast.parse(clean))) == []
