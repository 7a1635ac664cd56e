"""YAML that someone else wrote, read in bounded time and memory, with clean errors.

``yaml.safe_load`` constructs nothing dangerous, but trusts the *shape* of its input: an alias
bomb (ten lines whose anchors expand to billions of nodes), nesting a thousand levels deep (a
``RecursionError``), a 5000-digit integer (Python refuses ``int(str)`` beyond 4300 digits), an
impossible date or bytes that are not UTF-8 all end in a traceback or eat the machine. Here
every such input is a :class:`YAMLProblem` naming where it was found (keys and indices, as
``objects.count.randint[1]``) and what was expected; nothing larger than the limits below is
ever built. A key given twice in one mapping is a problem too: PyYAML keeps the last one
silently, so a second ``camera:`` block would quietly replace the first.

:func:`check_shape` applies the same limits to data that did not come from YAML (a dict handed
to ``load_spec``), so every caller of a config loader gets the same guarantees.

A leaf module: it imports the standard library, PyYAML and :mod:`synthcv.validation`.
"""

from __future__ import annotations

import itertools
import os
import stat
from pathlib import Path
from typing import Any

import yaml

from synthcv.validation import format_loc

__all__ = [
    "MAX_BYTES",
    "MAX_DEPTH",
    "MAX_INT_DIGITS",
    "MAX_NODES",
    "MAX_STRING",
    "YAMLProblem",
    "check_shape",
    "load_yaml",
    "load_yaml_file",
    "read_text",
]

MAX_BYTES = 8 * 2**20  # a config file: 8 MiB
MAX_DEPTH = 64  # nested mappings/lists (a spec needs fewer than 10)
MAX_NODES = 200_000  # values after expanding every alias
MAX_STRING = 10_000  # characters of one string (a path is at most 4096)
MAX_INT_DIGITS = 1_000  # digits of one integer (every integer setting is far smaller)

_INT_TAG = "tag:yaml.org,2002:int"
_TOO_DEEP = f"got values nested more than {MAX_DEPTH} levels deep here, expected less"


class YAMLProblem(ValueError):
    """Input beyond a limit, or unreadable: ``loc`` (keys and indices; empty for the whole
    document) and ``detail`` (``got X, expected Y``)."""

    def __init__(self, loc: tuple[str | int, ...], detail: str) -> None:
        self.loc = tuple(loc)
        self.detail = detail
        super().__init__(f"{format_loc(self.loc)}: {detail}")


def _segment(index: Any) -> str | int:
    if isinstance(index, int):
        return index
    if isinstance(index, yaml.ScalarNode):
        return str(index.value)[:80]
    return "?"


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader whose composer tracks where it is and the expanded size of every node.

    An alias is the anchored node itself (PyYAML shares it), so the node graph stays as small
    as the text; its *expanded* size (what ``json.dumps`` or a validator would walk) is
    counted, and composing stops as soon as it passes :data:`MAX_NODES`."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._loc: list[str | int] = []
        self._size: dict[int, int] = {}  # id(node) -> expanded node count

    def compose_node(self, parent: Any, index: Any) -> Any:
        pushed = parent is not None and index is not None
        if pushed:
            self._loc.append(_segment(index))
        try:
            if len(self._loc) > MAX_DEPTH:
                raise YAMLProblem(tuple(self._loc[:4]), _TOO_DEEP)
            if self.check_event(yaml.AliasEvent):
                anchor = self.peek_event().anchor
                target = self.anchors.get(anchor)
                if target is not None and id(target) not in self._size:
                    raise YAMLProblem(
                        tuple(self._loc),
                        f"got alias *{anchor} inside its own anchor, expected a finite structure",
                    )
                return super().compose_node(parent, index)
            node = super().compose_node(parent, index)
            self._measure(node)
            return node
        finally:
            if pushed:
                self._loc.pop()

    def _measure(self, node: Any) -> None:
        where = tuple(self._loc)
        if isinstance(node, yaml.ScalarNode):
            size = 1
            text = node.value
            if node.tag == _INT_TAG and len(text) > MAX_INT_DIGITS:
                raise YAMLProblem(
                    where,
                    f"got an integer of {len(text)} digits, expected a number of at most "
                    f"{MAX_INT_DIGITS} digits",
                )
            if len(text) > MAX_STRING:
                raise YAMLProblem(
                    where, f"got a string of {len(text)} characters, expected at most {MAX_STRING}"
                )
        elif isinstance(node, yaml.SequenceNode):
            size = 1 + sum(self._size.get(id(c), 1) for c in node.value)
        else:
            self._check_unique_keys(node, where)
            size = 1 + sum(
                self._size.get(id(k), 1) + self._size.get(id(v), 1) for k, v in node.value
            )
        if size > MAX_NODES:
            raise YAMLProblem(
                where,
                f"got more than {MAX_NODES:,} values once aliases are expanded, expected fewer "
                "(an alias bomb?)",
            )
        self._size[id(node)] = size

    @staticmethod
    def _check_unique_keys(node: Any, where: tuple[str | int, ...]) -> None:
        """YAML 1.2 requires unique keys; PyYAML keeps the last silently. Merge keys (``<<``)
        may be overridden by explicit ones and are left to PyYAML."""
        first_line: dict[tuple[str, str], int] = {}
        for key, _ in node.value:
            if not isinstance(key, yaml.ScalarNode) or key.tag == "tag:yaml.org,2002:merge":
                continue
            ident = (key.tag, key.value)
            line = key.start_mark.line + 1
            if ident in first_line:
                raise YAMLProblem(
                    (*where, _segment(key)),
                    f"got this key twice in one mapping (lines {first_line[ident]} and {line}), "
                    "expected each key once",
                )
            first_line[ident] = line


def load_yaml(text: str) -> Any:
    """Parse one YAML document within the limits.

    Raises :class:`YAMLProblem` for input beyond a limit and ``yaml.YAMLError`` for a syntax
    error; a value the YAML constructors reject (an impossible date, ...) is a YAMLProblem too.
    """
    loader = _BoundedLoader(text)
    try:
        return loader.get_single_data()
    except (YAMLProblem, yaml.YAMLError):
        raise
    except (ValueError, TypeError, OverflowError, RecursionError, MemoryError) as exc:
        raise YAMLProblem((), f"cannot construct a value: {type(exc).__name__}: {exc}") from None
    finally:
        loader.dispose()


def load_yaml_file(path: str | os.PathLike[str], max_bytes: int = MAX_BYTES) -> Any:
    """:func:`read_text` then :func:`load_yaml`: a config file within the limits. Raises
    :class:`YAMLProblem` (unreadable file or a limit; the caller names the file) or
    ``yaml.YAMLError`` (syntax)."""
    return load_yaml(read_text(path, max_bytes))


def read_text(path: str | os.PathLike[str], max_bytes: int = MAX_BYTES) -> str:
    """The UTF-8 text of a regular file of at most ``max_bytes``; else a :class:`YAMLProblem`
    (empty location) whose detail says what the file is instead ("not found", "not UTF-8
    text (byte 0xff at offset 9)", ...), without the path: the caller names the file."""
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise YAMLProblem((), "not found") from None
    except (OSError, ValueError) as exc:
        raise YAMLProblem((), f"cannot be opened: {_reason(exc)}") from None
    if not stat.S_ISREG(st.st_mode):
        raise YAMLProblem((), "not a regular file")
    if st.st_size > max_bytes:
        raise YAMLProblem((), f"{st.st_size:,} bytes, more than the {max_bytes:,} allowed")
    try:
        with open(p, "rb") as f:
            data = f.read(max_bytes + 1)
    except OSError as exc:
        raise YAMLProblem((), f"cannot be read: {_reason(exc)}") from None
    if len(data) > max_bytes:
        raise YAMLProblem((), f"more than the {max_bytes:,} bytes allowed")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise YAMLProblem(
            (), f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})"
        ) from None


def _reason(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def check_shape(data: Any, *, max_problems: int = 20) -> list[YAMLProblem]:
    """The limits of :func:`load_yaml` applied to Python data (a dict a caller built).

    Walks iteratively (no recursion), counts a shared or self-referencing container each time it
    is reached, and stops at the first nesting or size problem; integers and strings beyond the
    limits are listed, up to ``max_problems``."""
    problems: list[YAMLProblem] = []
    stack: list[tuple[tuple[str | int, ...], Any]] = [((), data)]
    reached = 1  # values put on the stack so far, shared ones once per reference
    while stack and len(problems) < max_problems:
        loc, v = stack.pop()
        if len(loc) > MAX_DEPTH:
            problems.append(YAMLProblem(loc[:4], _TOO_DEEP))
            break
        children: list[tuple[tuple[str | int, ...], Any]] = []
        if isinstance(v, bool) or v is None or isinstance(v, float):
            continue
        if isinstance(v, int):
            if v.bit_length() > MAX_INT_DIGITS * 3.33:
                digits = int(v.bit_length() * 0.30103) + 1
                problems.append(
                    YAMLProblem(
                        loc,
                        f"got an integer of {digits} digits, expected a number of at most "
                        f"{MAX_INT_DIGITS} digits",
                    )
                )
        elif isinstance(v, str):
            if len(v) > MAX_STRING:
                problems.append(
                    YAMLProblem(
                        loc, f"got a string of {len(v)} characters, expected at most {MAX_STRING}"
                    )
                )
        elif isinstance(v, dict):
            for k, x in itertools.islice(v.items(), MAX_NODES + 1):
                if isinstance(k, str) and len(k) > MAX_STRING:
                    problems.append(
                        YAMLProblem(
                            loc, f"got a key of {len(k)} characters, expected at most {MAX_STRING}"
                        )
                    )
                    continue
                key = k if isinstance(k, str | int) and not isinstance(k, bool) else str(k)[:80]
                children.append(((*loc, key), x))
        elif isinstance(v, list | tuple):
            children = [((*loc, i), x) for i, x in enumerate(itertools.islice(v, MAX_NODES + 1))]
        reached += len(children)
        if reached > MAX_NODES:
            problems.append(YAMLProblem(loc, f"got more than {MAX_NODES:,} values, expected fewer"))
            break
        stack.extend(reversed(children))
    return problems
