"""The command line's one error path: every exception a command raises becomes one message
naming what is wrong and where, and an exit code.

- exit 2: usage and input errors: a bad flag, spec or config (:class:`ConfigError`, its
  subclass ``SpecError``), a missing or unreadable input file, a dataset that is not one, an
  ``--out`` that cannot take the run (``OutputError``), any other ``ValueError``;
- exit 1: runtime failures: a sample that failed to render (``GenerationError``), a full disk, a
  read-only file system, permission denied, out of memory, and anything unexpected.

No traceback is printed unless ``synthcv --debug CMD ...`` or ``SYNTHCV_DEBUG=1`` asks for one.

Every command is a :class:`Command` (``errors.Typer`` makes its commands so; ``register``
functions pass ``cls=errors.Command``) whose ``invoke`` does the catching, so a command raises
and never prints its own errors; :class:`Group` catches as well, for anything below the root.
Usage errors typer raises itself (``typer.BadParameter`` ...) pass through: typer prints them
naming the flag, exit 2. Flag-specific checks use that form: :func:`blame` turns a
``ValueError`` raised while reading one option into ``Invalid value for '--op': ...``, and
:func:`output_dir` / :func:`output_file` are ``--out`` callbacks.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn

import typer
from typer.core import TyperCommand, TyperGroup

USAGE = 2
RUNTIME = 1
DEBUG_ENV = "SYNTHCV_DEBUG"
_DEBUG_KEY = "synthcv.debug"
_FALSE = {"", "0", "false", "no", "off"}

# errno -> what to say about the path; all are runtime failures (exit 1)
_RUNTIME_ERRNOS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "input/output error",
    errno.EMFILE: "too many open files",
}
# errno -> an input problem with the path the user gave (exit 2)
_INPUT_ERRNOS = {
    errno.ENOENT: "no such file or directory",
    errno.ENOTDIR: "not a directory",
    errno.EISDIR: "is a directory",
    errno.EEXIST: "already exists",
    errno.ENAMETOOLONG: "file name too long",
}


def set_debug(ctx: typer.Context, on: bool = True) -> None:
    """Show tracebacks for the rest of this invocation (the root ``--debug`` option)."""
    ctx.meta[_DEBUG_KEY] = on


def debug_enabled(ctx: typer.Context | None = None) -> bool:
    if ctx is not None and ctx.meta.get(_DEBUG_KEY):
        return True
    return os.environ.get(DEBUG_ENV, "").strip().lower() not in _FALSE


def _loaded(module: str, name: str) -> type | None:
    """An exception class of ``module`` if that module is loaded (if it is not, nothing raised
    one); the handler imports nothing heavy."""
    mod = sys.modules.get(module)
    cls = getattr(mod, name, None) if mod is not None else None
    return cls if isinstance(cls, type) else None


def _is(exc: BaseException, module: str, name: str) -> bool:
    cls = _loaded(module, name)
    return cls is not None and isinstance(exc, cls)


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        yield cur
        cur = cur.__cause__ or cur.__context__


def _os_error(exc: OSError) -> tuple[str, int]:
    path = exc.filename2 if exc.filename2 is not None else exc.filename
    if exc.errno in _RUNTIME_ERRNOS:
        what = _RUNTIME_ERRNOS[exc.errno]
        return (f"{what}: {path}" if path is not None else f"{what} ({exc})"), RUNTIME
    if exc.errno in _INPUT_ERRNOS or isinstance(exc, FileNotFoundError | FileExistsError):
        if path is None:  # a message of our own: it names the path already
            return str(exc), USAGE
        what = _INPUT_ERRNOS.get(exc.errno) or exc.strerror or type(exc).__name__
        return f"{path}: {what}", USAGE
    if _is(exc, "PIL", "UnidentifiedImageError"):  # PIL says "cannot identify image file X"
        return str(exc), USAGE
    if path is not None:
        return f"{path}: {exc.strerror or exc}", RUNTIME
    return str(exc) or type(exc).__name__, RUNTIME


def describe(exc: BaseException) -> tuple[str, int]:
    """The message and exit code the command line reports for ``exc``."""
    output_error = _loaded("synthcv.format.writer", "OutputError")
    if output_error is not None and any(isinstance(e, output_error) for e in _chain(exc)):
        return str(exc), USAGE  # the --out cannot take this run (the runner re-raises it)
    if _is(exc, "synthcv.validation", "ConfigError"):
        return str(exc), USAGE
    if _is(exc, "synthcv.pipeline.shard", "GenerationError"):
        return str(exc), RUNTIME
    if isinstance(exc, OSError):
        return _os_error(exc)
    if isinstance(exc, ValueError):
        return str(exc) or type(exc).__name__, USAGE
    if _is(exc, "yaml", "YAMLError"):
        return f"not valid YAML: {exc}", USAGE
    if isinstance(exc, MemoryError):
        return "out of memory", RUNTIME
    if isinstance(exc, FloatingPointError):  # a training run diverged; the message says where
        return str(exc), RUNTIME
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return (
        f"unexpected {detail} (run again with synthcv --debug or {DEBUG_ENV}=1 for the traceback)",
        RUNTIME,
    )


def report(exc: BaseException) -> NoReturn:
    """Print ``exc``'s message on stderr and exit with its code."""
    message, code = describe(exc)
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(code)


def _interrupted(exc: BaseException) -> bool:
    """A Ctrl-C that Python or a library turned into an error, which would otherwise read as
    bad input or a crash:

    - pydantic-core wraps whatever a Python serializer callback raises (``Error calling
      function `_omit_unset_new_fields`: KeyboardInterrupt``) while a spec is dumped;
    - CPython 3.11 wraps an exception raised while a class is built (``Error calling
      __set_name__ on 'Field' instance ...``, its cause the KeyboardInterrupt) when the
      interrupt lands in a dataclass definition during a lazy import.
    """
    if _is(exc, "pydantic_core", "PydanticSerializationError") and str(exc).rstrip(": \n").endswith(
        "KeyboardInterrupt"
    ):
        return True
    cause, depth = exc.__cause__, 0
    while cause is not None and depth < 16:
        if isinstance(cause, KeyboardInterrupt):
            return True
        cause, depth = cause.__cause__, depth + 1
    return False


def _handled(ctx: typer.Context, run: Any) -> Any:
    from synthcv.interrupts import InterruptGuard

    try:
        try:
            # a Ctrl-C Python swallows (a weakref callback, a __del__) still ends the command
            with InterruptGuard():
                return run()
        except Exception as exc:
            if _interrupted(exc):
                raise KeyboardInterrupt from exc
            raise
    except (typer.TyperException, typer.Exit, typer.Abort):
        raise  # usage errors and exits are typer's: it prints them and exits with their code
    except KeyboardInterrupt:
        if debug_enabled(ctx):
            raise
        import signal

        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not cut the exit short
        typer.echo(
            "\ninterrupted: finished work is kept and nothing half-written is left; run the same "
            "command again to resume",
            err=True,
        )
        raise typer.Exit(130) from None  # 128 + SIGINT, as shells report an interrupted job
    except Exception as exc:
        if debug_enabled(ctx):
            raise
        report(exc)


class Command(TyperCommand):
    """A command whose exceptions leave through :func:`describe` (message, exit code)."""

    def invoke(self, ctx: typer.Context) -> Any:
        return _handled(ctx, lambda: super(Command, self).invoke(ctx))


class Group(TyperGroup):
    """A group that also catches what its commands raise (a command that is not a
    :class:`Command` still gets the one error path)."""

    def invoke(self, ctx: typer.Context) -> Any:
        return _handled(ctx, lambda: super(Group, self).invoke(ctx))


class Typer(typer.Typer):
    """``typer.Typer`` whose commands are :class:`Command` and whose group is a :class:`Group`."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("cls", Group)
        kwargs.setdefault("pretty_exceptions_enable", False)
        super().__init__(**kwargs)

    def command(self, name: str | None = None, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", Command)
        return super().command(name, **kwargs)


@contextmanager
def blame(flag: str, prefix: str = "") -> Iterator[None]:
    """Report a ``ValueError`` raised inside (``ConfigError`` included: its problems) as a
    usage error of ``flag``: ``Invalid value for '--op': PREFIX message``."""
    try:
        yield
    except ValueError as exc:
        problems = getattr(exc, "problems", None)
        detail = "; ".join(problems) if problems else str(exc)
        raise typer.BadParameter(prefix + detail, param_hint=[flag]) from None


def output_dir(value: Path | None) -> Path | None:
    """``--out`` callback for a directory to write: it may not exist yet, but must not be a
    file (``/dev/null`` included)."""
    if value is not None and value.exists() and not value.is_dir():
        raise typer.BadParameter(f"{value} exists and is not a directory")
    return value


def output_file(value: Path | None) -> Path | None:
    """``--out`` callback for a file to write: not an existing directory."""
    if value is not None and value.is_dir():
        raise typer.BadParameter(f"{value} is a directory; give a file name")
    return value
