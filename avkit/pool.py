"""Forked worker processes that always finish: a worker's failure or death ends the caller's wait.

``multiprocessing.Pool`` waits forever when a worker dies (SIGKILL, the OOM killer, ``os._exit``,
a segfault: the task is lost and a fresh worker takes its place) or raises an exception the parent
cannot unpickle (the pool's result thread dies). Here each worker runs one task at a time over its
own pipe, so the parent knows which task each worker holds: a death or a failure becomes
:class:`~avkit.errors.WorkerError` naming that task, and the pool is torn down.
"""
from __future__ import annotations

import contextlib
import pickle
import signal
import sys
import traceback
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection, wait
from typing import Any

from avkit.errors import WorkerError


def can_fork() -> bool:
    """Whether :func:`forked_pool` may be used here (Linux: fork is safe for what avkit runs in it)."""
    return sys.platform == "linux"


class RemoteTraceback(Exception):
    """A worker's formatted traceback, attached as the ``__cause__`` of the error the parent raises."""

    def __str__(self) -> str:
        return "\n\n" + str(self.args[0]) if self.args else ""


class Job:
    """One task given to a :class:`ForkedPool`: ``what`` names it in errors; ``result`` once ``done``."""

    def __init__(self, pool: ForkedPool, fn: Callable[..., Any], args: tuple, what: str) -> None:
        self.pool, self.fn, self.args, self.what = pool, fn, args, what
        self.done = False
        self.result: Any = None

    def ready(self) -> bool:
        """Whether the result is in (collects what the workers have finished, without waiting)."""
        if not self.done:
            self.pool.wait(0)
        return self.done

    def get(self) -> Any:
        """The task's result, waiting for it; raises the first failure of any task of the pool."""
        while not self.done:
            self.pool.wait()
        return self.result


class _Worker:
    def __init__(self, ctx: Any, initializer: Callable[..., Any] | None, initargs: tuple) -> None:
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_work, args=(child, initializer, initargs), daemon=True)
        self.process.start()
        child.close()
        self.job: Job | None = None


class ForkedPool:
    """``processes`` forked workers, one task each at a time. Use it through :func:`forked_pool`.

    :meth:`submit` queues a task and returns its :class:`Job`; :meth:`wait` hands queued tasks to
    idle workers and collects results; :meth:`imap` maps in order. Any task's failure is raised by
    the next :meth:`wait` (a picklable exception as itself, with the worker's traceback as its
    cause; any other as :class:`WorkerError`), and a worker's death as :class:`WorkerError`.
    """

    def __init__(self, processes: int, initializer: Callable[..., Any] | None = None, initargs: tuple = ()) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("fork")
        self.workers: list[_Worker] = []
        self.queue: deque[Job] = deque()
        for _ in range(max(1, processes)):
            self.workers.append(_Worker(ctx, initializer, initargs))

    def submit(self, fn: Callable[..., Any], *args: Any, what: str) -> Job:
        """Queue ``fn(*args)``; ``what`` says what it does in an error ("generating clip 12")."""
        job = Job(self, fn, args, what)
        self.queue.append(job)
        self._dispatch()
        return job

    def imap(self, fn: Callable[[Any], Any], items: Iterable[Any], what: Callable[[Any], str]) -> Iterator[Any]:
        """``fn(item)`` for each item, in order; ``what(item)`` names an item in an error."""
        jobs = [self.submit(fn, item, what=what(item)) for item in items]
        for job in jobs:
            yield job.get()
            job.result = None  # not kept once handed over

    def wait(self, timeout: float | None = None) -> None:
        """Collect finished tasks, waiting up to ``timeout`` seconds (None: until one finishes) when
        none has; raises a task's failure or a worker's death."""
        busy = [w for w in self.workers if w.job is not None]
        if not busy:
            return
        ready = wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout)
        for worker in busy:
            if worker.conn in ready or worker.process.sentinel in ready:
                self._collect(worker)
        self._dispatch()

    def _collect(self, worker: _Worker) -> None:
        job = worker.job
        assert job is not None
        try:
            has_reply = worker.conn.poll()
            reply = worker.conn.recv() if has_reply else None
        except (EOFError, OSError):
            reply = None
        if reply is None:  # the pipe closed or the process ended without a word: it died
            worker.process.join(5)
            raise WorkerError(f"{job.what}: the worker process {_death(worker.process.exitcode)}")
        worker.job = None
        status, value = reply
        if status == "ok":
            job.done, job.result = True, value
            return
        err, text, tb = value
        if err is None:
            raise WorkerError(f"{job.what}: {text}") from RemoteTraceback(tb)
        err.add_note(f"(in a worker process, {job.what})")
        raise err from RemoteTraceback(tb)

    def _dispatch(self) -> None:
        for worker in self.workers:
            if worker.job is None and self.queue:
                job = worker.job = self.queue.popleft()
                with contextlib.suppress(OSError):  # a worker that has ended: found by the next wait
                    worker.conn.send((job.fn, job.args))

    def close(self, graceful: bool) -> None:
        """Stop the workers: tell idle ones to finish (``graceful``) or terminate them at once; a worker
        still there after a few seconds is killed."""
        for worker in self.workers:
            if graceful and worker.job is None:
                with contextlib.suppress(OSError):
                    worker.conn.send(None)
            else:
                worker.process.terminate()
        for worker in self.workers:
            worker.process.join(5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()


@contextlib.contextmanager
def forked_pool(processes: int, initializer: Callable[..., Any] | None = None,
                initargs: tuple = ()) -> Iterator[ForkedPool]:
    """A :class:`ForkedPool`, stopped on leaving (terminated at once on an error or Ctrl-C, so no
    worker outlives its caller). Forked, not spawned: a spawned worker re-imports the caller's
    ``__main__``, which re-runs a user's script that has no main guard."""
    pool = ForkedPool(processes, initializer, initargs)
    graceful = False
    try:
        yield pool
        graceful = True
    finally:
        pool.close(graceful)


def _death(exitcode: int | None) -> str:
    """How a worker process ended, in words."""
    if exitcode is not None and exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" if name == "SIGKILL" else ""
        return f"died, killed by {name}{hint}"
    return f"died (exit code {exitcode})"


def _work(conn: Connection, initializer: Callable[..., Any] | None, initargs: tuple) -> None:
    """A worker's loop: run each ``(fn, args)`` received and send back ``("ok", result)`` or
    ``("error", (exception or None, "Type: message", traceback text))``; ``None`` ends it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, which stops the pool
    try:
        if initializer is not None:
            initializer(*initargs)
    except Exception as err:
        _reply_error(conn, err, "starting the worker: ")  # told at the first task's collection
        return
    while True:
        try:
            task = conn.recv()
        except EOFError:  # the parent went away
            return
        if task is None:
            return
        fn, args = task
        try:
            result = fn(*args)
        except Exception as err:
            _reply_error(conn, err)
            continue
        try:
            conn.send(("ok", result))
        except Exception as err:  # the result cannot be pickled
            _reply_error(conn, err)


def _reply_error(conn: Connection, err: Exception, prefix: str = "") -> None:
    """Send ``err`` as itself when it survives a pickle round trip, else as its type, message and traceback."""
    tb = "".join(traceback.format_exception(err))
    text = prefix + (f"{type(err).__name__}: {err}".splitlines()[0] if str(err) else type(err).__name__)
    try:
        pickle.loads(pickle.dumps(err))
        sendable: Exception | None = err
    except Exception:
        sendable = None
    try:
        conn.send(("error", (sendable, text, tb)))
    except Exception:
        conn.send(("error", (None, text, tb)))
