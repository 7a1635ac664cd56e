"""One style for every configuration error: ``field.path: got X, expected Y``.

The dataset spec, experiment configs and the generative-model training config are pydantic
models; whatever rejects a value reports it through :func:`format_validation_error`, so a user
sees the same kind of line everywhere::

    camera.elevaton: unknown key 'elevaton', expected one of azimuth, ...; did you mean 'elevation'?
    count: got -3, expected greater than or equal to 1
    lr: got 0.0, expected greater than 0

and a failed load raises a :class:`ConfigError` (a ``ValueError``) holding those lines.

A leaf module: it imports only the standard library and pydantic.
"""

from __future__ import annotations

import contextlib
import difflib
import json
import math
import re
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Union

from pydantic import BaseModel, ValidationError, model_serializer

__all__ = [
    "ConfigError",
    "FieldProblem",
    "Problem",
    "format_loc",
    "format_validation_error",
    "short_value",
    "validation_problems",
]


class ConfigError(ValueError):
    """A configuration failed validation.

    ``problems`` lists one ``path: got X, expected Y`` line per problem and ``source`` names what
    was read (a file path, "spec", "TrainConfig", ...); the message shows both.
    """

    def __init__(self, problems: list[str], source: str = "config") -> None:
        self.problems = list(problems)
        self.source = source
        super().__init__(
            f"{source}: {len(problems)} problem(s)\n" + "\n".join(f"  - {p}" for p in problems)
        )

    def __reduce__(self) -> tuple[Any, ...]:  # survives pickling (worker processes)
        return type(self), (self.problems, self.source)


class FieldProblem(ValueError):
    """Raise from a model validator to report a problem at a field *below* the model.

    A cross-field check (``eval`` names a source that ``data`` lacks) runs on the whole model,
    so pydantic places its error at the model; ``FieldProblem("eval", "unknown source 'x'")``
    moves the report to ``eval`` and prints ``detail`` as it is (no "got <the whole model>").
    ``path`` is dotted (``"finetune.replay.source"``) or a tuple of keys and indices.
    """

    def __init__(self, path: str | tuple[str | int, ...], detail: str) -> None:
        self.loc: tuple[str | int, ...] = tuple(path.split(".")) if isinstance(path, str) else path
        self.detail = detail
        super().__init__(f"{format_loc(self.loc)}: {detail}")


@dataclass(frozen=True)
class Problem:
    """One validation problem: where (``loc``, keys and list indices) and what (``detail``)."""

    loc: tuple[str | int, ...]
    detail: str

    @property
    def path(self) -> str:
        return format_loc(self.loc)

    def __str__(self) -> str:
        return f"{self.path}: {self.detail}"


def _unwrap(tp: Any) -> list[Any]:
    """Model classes reachable from an annotation (through Optional, list, dict, Annotated)."""
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _unwrap(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType, list, tuple, dict):
        out: list[Any] = []
        for a in typing.get_args(tp):
            out += _unwrap(a)
        return out
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [tp]
    return []


def _union_tag(candidates: list[type[BaseModel]], part: Any) -> type[BaseModel] | None:
    """The member of a tagged union that pydantic names ``part`` in an error location: its
    discriminator value (a Literal field's default, e.g. ``backend: "cycles"``) or class name."""
    if not isinstance(part, str) or len(candidates) < 2:
        return None
    for c in candidates:
        if part == c.__name__:
            return c
        for f in c.model_fields.values():
            if typing.get_origin(f.annotation) is typing.Literal and f.default == part:
                return c
    return None


def _walk(root: type[BaseModel], loc: tuple[Any, ...]) -> tuple[tuple[Any, ...], Any]:
    """``loc`` without union tags, and the model class it ends at (None past the models)."""
    candidates: list[type[BaseModel]] = [root]
    shown: list[Any] = []
    for part in loc:
        model = candidates[0] if candidates else None
        if (member := _union_tag(candidates, part)) is not None:
            candidates = [member]  # a tag names the union member; it is not a key the user wrote
            continue
        shown.append(part)
        if model is None or isinstance(part, int) or part not in model.model_fields:
            continue  # list index or dict key: stays within the container's element model
        candidates = _unwrap(model.model_fields[part].annotation)
    return tuple(shown), (candidates[0] if candidates else None)


def _model_at(root: type[BaseModel], loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The model class found at ``loc`` below ``root`` (None where the path leaves models)."""
    return _walk(root, loc)[1]


_PLAIN_KEY = re.compile(r"[\w\-]{1,80}")


def format_loc(loc: tuple[Any, ...]) -> str:
    """``("objects", "classes", 0, "asset")`` -> ``objects.classes[0].asset``.

    A key that is not a plain word (dots, colons, spaces, empty, very long: anything a user
    may have typed as a mapping key) is quoted, ``objects.classes["a b"].scale``, so the path
    always ends where the message begins."""
    out = ""
    for part in loc:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
            continue
        text = str(part)
        if _PLAIN_KEY.fullmatch(text):
            out += f".{text}" if out else text
        else:
            out += f"[{json.dumps(text if len(text) <= 80 else text[:77] + '...')}]"
    return out or "(top level)"


_INT_DIGITS = 100  # integers longer than this are shown by their size, not their digits


class _Full(Exception):
    """The output budget of :func:`short_value` is spent."""


def _emit(v: Any, out: list[str], budget: list[int], depth: int) -> None:
    """Append ``v`` as JSON-like text to ``out`` until ``budget[0]`` characters are spent.

    Work is bounded by the budget (not by the size of ``v``): a container stops at the first
    item that does not fit, so a gigantic (or shared, or self-referencing) value costs no more
    than a small one. Non-finite floats read as YAML users write them (nan, inf, -inf)."""

    def put(s: str) -> None:
        out.append(s)
        budget[0] -= len(s)
        if budget[0] <= 0:
            raise _Full

    if depth > 32:
        put("...")
    elif v is None or isinstance(v, bool):
        put(json.dumps(v))
    elif isinstance(v, int):
        bits = v.bit_length()
        if bits > _INT_DIGITS * 3.33:  # str() of a huge int is slow, or refused (PEP 651 limit)
            put(f"an integer of {int(bits * 0.30103) + 1} digits")
        else:
            put(str(v))
    elif isinstance(v, float):
        put(str(v) if not math.isfinite(v) else json.dumps(v))
    elif isinstance(v, str):
        put(json.dumps(v[: budget[0] + 1]))
    elif isinstance(v, dict):
        put("{")
        for i, (k, x) in enumerate(v.items()):
            put(", " if i else "")
            _emit(k if isinstance(k, str) else str(k)[:40], out, budget, depth + 1)
            put(": ")
            _emit(x, out, budget, depth + 1)
        put("}")
    elif isinstance(v, list | tuple):
        put("[")
        for i, x in enumerate(v):
            put(", " if i else "")
            _emit(x, out, budget, depth + 1)
        put("]")
    else:
        try:
            text = str(v)
        except Exception:  # an object whose str() fails is shown by its type
            text = f"<{type(v).__name__}>"
        put(json.dumps(text[: budget[0] + 1]))


def short_value(v: Any, n: int = 80) -> str:
    """A value as a user wrote it (JSON; strings quoted), cut to ``n`` characters.

    Never serialises more than about ``n`` characters of ``v``, so a huge input (an expanded
    YAML alias bomb, a 5000-digit integer) cannot make an error message slow or fail."""
    if isinstance(v, str):
        s = repr(v[: n + 1])
    else:
        out: list[str] = []
        with contextlib.suppress(_Full):
            _emit(v, out, [n + 1], 0)
        s = "".join(out)
    return s if len(s) <= n else s[: n - 3] + "..."


def validation_problems(err: ValidationError, root: type[BaseModel]) -> list[Problem]:
    """Every error in ``err`` as a :class:`Problem`; ``root`` is the model that was validated
    (it gives an unknown key its "did you mean" among the fields at that level)."""
    problems = []
    for e in err.errors(include_url=False):
        # drop pydantic's union/validator tags ("function-after[...]", a tagged union's
        # member) from the path: they are not keys the user wrote
        raw = tuple(p for p in e["loc"] if not (isinstance(p, str) and "[" in p))
        loc, _ = _walk(root, raw)
        typ = e["type"]
        cause = (e.get("ctx") or {}).get("error")
        msg = e["msg"].removeprefix("Value error, ").removeprefix("Assertion failed, ")
        msg = msg.removeprefix("Input should be ")
        if isinstance(cause, FieldProblem):
            problems.append(Problem(loc + cause.loc, cause.detail))
        elif typ == "extra_forbidden":
            parent = _model_at(root, raw[:-1])
            key = str(loc[-1])
            fields = sorted(parent.model_fields) if parent else []
            close = difflib.get_close_matches(key, fields, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(
                Problem(loc, f"unknown key {key!r}, expected one of {', '.join(fields)}{hint}")
            )
        elif typ == "missing":
            problems.append(Problem(loc, "missing, expected a value"))
        else:
            problems.append(Problem(loc, f"got {short_value(e.get('input'))}, expected {msg}"))
    return problems


def format_validation_error(err: ValidationError, root: type[BaseModel]) -> list[str]:
    """``path: got X, expected Y`` lines, one per error in ``err``; ``root`` is the validated
    model (see :func:`validation_problems`)."""
    return [str(p) for p in validation_problems(err, root)]


class HashStableModel(BaseModel):
    """A config model whose optional fields added later are left out of its dump while unset
    (None, or an empty list).

    Specs are hashed from their dump (the scene and spec hashes), so a new option must not
    change the dump, and thus the samples and the dataset's identity, of a spec that does not
    use it: list every such field in ``HASH_STABLE_OPTIONAL``.
    """

    HASH_STABLE_OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    @model_serializer(mode="wrap")
    def _omit_unset_new_fields(self, handler: Any) -> Any:
        data = handler(self)
        if isinstance(data, dict):
            for name in self.HASH_STABLE_OPTIONAL:
                value = getattr(self, name, None)
                if value is None or (isinstance(value, list) and not value):
                    data.pop(name, None)
        return data
