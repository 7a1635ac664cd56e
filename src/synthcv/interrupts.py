"""Ctrl-C in any command: never lost, never raised where it deadlocks a worker pool.

Python's default SIGINT handler raises KeyboardInterrupt wherever the main thread happens to
be. Two places make that wrong:

- Python *swallows* an exception raised inside a weakref callback, a ``__del__`` or the
  garbage collector (it prints "Exception ignored in ..." and carries on): an interrupt that
  lands in one (seen in importlib's module-lock callback during a lazy import) is lost, and
  the run completes as if nobody had pressed Ctrl-C;
- inside ``concurrent.futures.wait`` while it holds the futures' locks (its
  ``_AcquireFutures`` loop): the pool's manager thread then blocks forever on a lock the main
  thread will never release, while the main thread waits for the manager thread to shut
  down, and the run hangs without a word.

:class:`InterruptGuard` handles SIGINT for the run: it raises at once, as the default handler
does, and also remembers, so :meth:`~InterruptGuard.check` (between shards, before the
manifest) ends a run whose interrupt was swallowed. Within :meth:`~InterruptGuard.deferred`
(the pool's polling loop) it only remembers, and the loop raises at a point that holds no
library lock.

The command line runs every command inside one guard, so a swallowed Ctrl-C ends the command
with exit 130 at the latest when it returns; long loops (generate's shards, augment's
samples, a training loop's steps) call :func:`interruption_point` to stop at the next unit
of work instead. A guard entered inside another shares the outer one's state: one handler,
one flag.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from types import FrameType, TracebackType


class InterruptGuard:
    """Handle SIGINT for a block: raise KeyboardInterrupt at once and remember it (or, inside
    :meth:`deferred`, only remember it). On leaving the block the previous handler is
    restored, and an interrupt remembered but not yet acted on is raised then.

    Outside the main thread, or when SIGINT is ignored or handled by someone else's handler
    (an embedding application), it installs nothing: their behaviour is theirs to keep; the
    flag then never sets, and :meth:`check` never raises.
    """

    def __init__(self) -> None:
        self._requested = False
        self._deferring = 0
        self._previous: object = None
        self._installed = False
        self._root: InterruptGuard = self  # the installed guard this one shares, if nested

    @property
    def requested(self) -> bool:
        """A Ctrl-C arrived (and was not yet acted on) since the outermost guard began."""
        return self._root._requested

    @requested.setter
    def requested(self, value: bool) -> None:
        self._root._requested = value

    def _on_sigint(self, signum: int, frame: FrameType | None) -> None:
        # a handler runs between any two bytecodes of the main thread: set a flag, take no lock
        self._requested = True
        if not self._deferring:
            raise KeyboardInterrupt

    def check(self) -> None:
        """Raise KeyboardInterrupt if a Ctrl-C arrived since the block began."""
        if self.requested:
            raise KeyboardInterrupt

    @contextlib.contextmanager
    def deferred(self) -> Iterator[InterruptGuard]:
        """Within: a Ctrl-C only sets the flag; the code polls :meth:`check`."""
        root = self._root
        root._deferring += 1
        try:
            yield self
        finally:
            root._deferring -= 1

    def __enter__(self) -> InterruptGuard:
        if threading.current_thread() is threading.main_thread():
            current = signal.getsignal(signal.SIGINT)
            owner = _guard_of(current)
            if owner is not None:
                self._root = owner._root
            elif current is signal.default_int_handler:
                self._previous = current
                signal.signal(signal.SIGINT, self._on_sigint)
                self._installed = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._installed:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]
            self._installed = False
        if exc_type is None:
            self.check()


def _guard_of(handler: object) -> InterruptGuard | None:
    owner = getattr(handler, "__self__", None)
    return owner if isinstance(owner, InterruptGuard) else None


def interruption_point() -> None:
    """Raise KeyboardInterrupt if a Ctrl-C arrived under the guard now handling SIGINT (one
    Python may have swallowed); nothing when no guard is installed. Cheap: one call per unit
    of work in a long loop."""
    guard = _guard_of(signal.getsignal(signal.SIGINT))
    if guard is not None:
        guard.check()
