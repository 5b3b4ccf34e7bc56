"""Loading YAML with the line of every key; duplicates, tags and self-referring aliases are bad input."""

from __future__ import annotations

import pytest

from repropack.errors import BadInput
from repropack.experiment.yamldoc import load_yaml


def test_values_and_lines() -> None:
    doc = load_yaml("a: 1\nb:\n  c: [x, y]\n  d: 'three'\n", "e.yaml")
    assert doc.value == {"a": 1, "b": {"c": ["x", "y"], "d": "three"}}
    assert doc.line("a") == 1
    assert doc.line("b", "c") == 3
    assert doc.line("b", "d") == 4
    assert doc.line("b", "c", "0") == 3  # items of a list fall back to the key's line
    assert doc.line("b", "missing") == 2  # the nearest ancestor


def test_empty_and_comment_only_documents_have_no_value() -> None:
    assert load_yaml("", "e.yaml").value is None
    assert load_yaml("# nothing\n", "e.yaml").value is None


def test_keys_become_strings_and_quoted_scalars_stay_strings() -> None:
    doc = load_yaml("1: one\ntrue: yes\npython: '3.10'\nbare: 3.10\n", "e.yaml")
    assert doc.value == {"1": "one", "True": True, "python": "3.10", "bare": 3.1}


def test_aliases_are_expanded() -> None:
    doc = load_yaml("tol: &t {abs_tol: 0.1}\na: *t\nb: [*t]\n", "e.yaml")
    assert doc.value == {"tol": {"abs_tol": 0.1}, "a": {"abs_tol": 0.1}, "b": [{"abs_tol": 0.1}]}


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("a: 1\nb: 2\na: 3\n", "e.yaml: line 3: duplicate key 'a' (first at line 1)"),
        ("a: [1\n", "e.yaml is not valid YAML"),
        ("a: b: c\n", "e.yaml is not valid YAML at line 1"),
        ("a: 1\nb: !!python/name:os.system x\n", "e.yaml: line 2: cannot read the value 'x'"),
        ("seed: !!int abc\n", "e.yaml: line 1: cannot read the value 'abc'"),
        ("seed: !!float x\n", "cannot read the value 'x'"),
        ("a: !custom x\n", "tagged !custom"),
        ("a: &x [*x]\n", "e.yaml: line 1: an alias refers to a value that contains it"),
        ("a: &x\n  b: *x\n", "an alias refers to a value that contains it"),
    ],
    ids=[
        "duplicate",
        "unclosed",
        "nested-colon",
        "python-tag",
        "bad-int",
        "bad-float",
        "custom-tag",
        "self-alias-list",
        "self-alias-map",
    ],
)
def test_bad_documents_are_bad_input(text: str, fragment: str) -> None:
    with pytest.raises(BadInput) as caught:
        load_yaml(text, "e.yaml")
    assert fragment in str(caught.value)
    assert caught.value.exit_code == 2
