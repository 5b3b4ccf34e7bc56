"""Load a YAML document into plain Python values while keeping the line of every mapping key.

PyYAML's safe loader silently keeps the last of two duplicate keys; a spec with a duplicate key is
almost always a mistake, so duplicates are rejected here. Lines are 1-based.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml

from repropack.errors import BadInput


@dataclass
class Located:
    """A loaded document and, for each key path (a tuple of keys), the line it stands on."""

    value: Any
    lines: dict[tuple[str, ...], int] = field(default_factory=dict)

    def line(self, *path: str) -> int | None:
        """The line of ``path``, or of its nearest ancestor that has one."""
        for end in range(len(path), -1, -1):
            found = self.lines.get(tuple(path[:end]))
            if found is not None:
                return found
        return None


def load_yaml(text: str, source: str) -> Located:
    """Parse ``text`` (from ``source``, named in errors) into a :class:`Located` document."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, source) from None
    doc = Located(value=None)
    if node is None:
        return doc
    doc.lines[()] = node.start_mark.line + 1
    doc.value = _convert(node, (), doc.lines, source)
    return doc


def check_syntax(text: str, source: str) -> None:
    """Only that ``text`` is one well-formed YAML document (for files whose values the experiment reads)."""
    try:
        yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        raise _syntax_error(exc, source) from None


def _syntax_error(exc: yaml.YAMLError, source: str) -> BadInput:
    """One paragraph for a YAML syntax error: where (line, or byte for a stray control character) and the fix."""
    mark = getattr(exc, "problem_mark", None)
    problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
    where = f" at line {mark.line + 1}" if mark is not None else ""
    context, context_mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and context_mark is not None and mark is not None and context_mark.line != mark.line:
        problem += f" ({context.removeprefix('while ')} that starts at line {context_mark.line + 1})"
    hint = "Check the indentation and quoting there."
    if isinstance(exc, yaml.reader.ReaderError):
        where = f" at byte {exc.position}"
        hint = "A YAML file is plain text: remove the control character, or check that this is the right file."
    elif "another document" in problem:
        problem = "a second document starts here (a '---' line)"
        hint = "Keep one document: remove the second '---' and what follows, or merge the two."
    elif "\\t" in problem:
        hint = "Indent with spaces: YAML does not allow tabs there."
    return BadInput(f"{source} is not valid YAML{where}: {problem}.", hint=hint)


def _convert(
    node: yaml.Node,
    path: tuple[str, ...],
    lines: dict[tuple[str, ...], int],
    source: str,
    active: frozenset[int] = frozenset(),
) -> Any:
    if id(node) in active:  # an alias inside its own anchor ('a: &x [*x]') would recurse forever
        raise BadInput(
            f"{source}: line {node.start_mark.line + 1}: an alias refers to a value that contains it.",
            hint="Write the value out instead of using the alias.",
        )
    active = active | {id(node)} if isinstance(node, yaml.CollectionNode) else active
    if isinstance(node, yaml.MappingNode):
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, source)
            line = key_node.start_mark.line + 1
            if not isinstance(key, str):
                key = str(key)
            if key in result:
                first = lines.get((*path, key))
                raise BadInput(
                    f"{source}: line {line}: duplicate key '{key}' (first at line {first}).",
                    hint="Keep one of them; a later duplicate would silently replace the earlier value.",
                )
            lines[(*path, key)] = line
            result[key] = _convert(value_node, (*path, key), lines, source, active)
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_convert(item, (*path, str(i)), lines, source, active) for i, item in enumerate(node.value)]
    return _scalar(node, source)


def _scalar(node: yaml.Node, source: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        return "<complex key>"
    return _construct(node, source)


def _construct(node: yaml.ScalarNode, source: str) -> Any:
    loader = yaml.SafeLoader("")
    try:
        return loader.construct_object(node, deep=True)
    except (yaml.YAMLError, ValueError, TypeError) as exc:  # an unknown tag, or '!!int abc'
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise BadInput(
            f"{source}: line {node.start_mark.line + 1}: cannot read the value {node.value!r} "
            f"tagged {node.tag} ({problem}).",
            hint="Remove the tag (the word starting with '!') or fix the value.",
        ) from None
    finally:
        loader.dispose()
