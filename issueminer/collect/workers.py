"""Worker processes that share out a batch of jobs, and can give a later batch's job i to
the worker that ran job i before.

A scan of a large file runs its pieces in a few long-lived processes. In a batch (one
phase of a scan) each idle worker claims the next job itself, from counters they share,
so a worker slowed down (by the parent storing results beside it, or by a piece with
more to do) takes fewer jobs and none waits at the end. Results come back in job order,
and the caller learns which worker ran each job (`owners`); passing that to the next
batch (`affinity`) gives each worker the same pieces again, whose pages it still has
mapped. A worker whose own jobs are done takes over the last jobs of the one with the
most left, rather than wait for it.

With `helping`, the calling process is the last of the workers: whenever the result it
waits for has not come in, it claims a job and runs it itself, and only `count - 1`
processes are started. On a machine with no more cores than workers, a caller that only
stores what comes back shares a core with a worker: the two take turns on it, each slower
for the other's use of the core's caches, and every process forked is one more to start,
whose copied pages cost faults. In 16 paired turns of a two-worker scan of the benchmark's
1 GB dump on two cores, the caller helping took 0.06 s less (the median; less in 12 of 16
turns, of about 0.65 s) and 0.11 s less CPU than a caller that only stored.

Why not `multiprocessing.Pool`: a pool dispatches job by job through helper threads in
the parent, which on a two-core machine took about a tenth of a core away from the
workers while they scanned. Here the parent has no thread: it sends each worker the batch
once and reads results from one pipe per worker. Each worker sends from a thread of its
own, so it never waits for the parent to read (a result is larger than a pipe's buffer,
and the parent is busy storing the last one).
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import pickle
import queue
import signal
import threading
import traceback
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

STOP = b""  # asks a worker to exit once its jobs are done
JOB_BYTES = 8  # each result starts with its job's number
# The shared claim slots: the batch being served, then the front and back of each queue
# of jobs (positions in its list). A worker takes from the front of its own queue and
# from the back of another's; one that finished the last batch late finds a newer batch
# number there and claims nothing from jobs it does not have.
BATCH_SLOT = 0


def _front(queue: int) -> int:
    return 1 + 2 * queue


def _back(queue: int) -> int:
    return 2 + 2 * queue


class WorkerDied(RuntimeError):
    """A worker process ended before it sent every result."""


class Workers:
    """`count` workers that run `function(job, context)`: as many processes, or with
    `helping` this one and `count - 1` others; see the module's docstring."""

    def __init__(
        self, count: int, function: Callable[[Any, Any], Any], *, helping: bool = False
    ) -> None:
        if helping and count < 2:
            raise ValueError("a helping caller needs at least one worker process beside it")
        self.workers = count  # how many (the name the scan's executors share)
        self.function = function
        self._helping = helping
        self._own: Iterator[int] = iter(())  # the jobs this process claims (when helping)
        self._batch_jobs: tuple[list[Any], Any] = ([], None)  # the batch this process helps with
        self._processes: list[Any] = []
        self._pipes: list[Any] = []
        self._batch = 0  # which batch the workers are serving; older iterators refuse to read
        self._unread = 0  # results of the current batch not read yet
        self._released = False  # the workers were asked to exit after their jobs
        self._claims: Any = None  # the shared slots workers claim jobs with (see BATCH_SLOT)
        self._ended: set[int] = set()  # released workers whose pipe has closed
        self.owners: list[int] = []  # which worker ran each job of the last batch read whole
        # results ahead of their turn: (worker, a worker's pickled outcome or this one's own)
        self._waiting: dict[int, tuple[int, bytes | tuple[bool, Any]]] = {}
        weakref.finalize(self, _terminate, self._processes)  # registered while self lives

    def map(
        self, jobs: Sequence[Any], context: Any, affinity: Sequence[int] | None = None
    ) -> Iterator[Any]:
        """Starts every job now (not on the first `next`), so the caller can work meanwhile;
        yields the results in job order. Idle workers claim the jobs, unless `affinity`
        says which worker runs each (the `owners` of an earlier batch of as many jobs)."""
        if self._unread or self._released:
            self.close()  # an abandoned batch: its results would come before this one's
        jobs = list(jobs)
        pipes = self._started()
        if affinity is not None and (
            len(affinity) != len(jobs) or any(w >= self.workers for w in affinity)
        ):
            affinity = None  # not from these workers, or not for these jobs
        self._batch += 1
        if affinity is None:
            queues = [list(range(len(jobs)))]  # one queue, taken from the front by all
        else:
            queues = [[i for i, w in enumerate(affinity) if w == n] for n in range(self.workers)]
        with self._claims.get_lock():  # a worker done with the last batch may still look
            slots = self._claims.get_obj()
            slots[BATCH_SLOT] = self._batch
            for number in range(self.workers):
                slots[_front(number)] = 0
                slots[_back(number)] = len(queues[number]) if number < len(queues) else 0
        # pickled once for every worker
        message = pickle.dumps((self._batch, jobs, queues, context), pickle.HIGHEST_PROTOCOL)
        for worker, pipe in enumerate(pipes):
            try:
                if not self._processes[worker].is_alive():
                    raise OSError  # else the others would do its share, and nobody would know
                pipe.send_bytes(message)
            except OSError:
                raise self._died(worker, "before it was sent its jobs") from None
        self._unread = len(jobs)
        self._waiting = {}
        if self._helping:  # this process is the last worker
            self._own = _claimed(self._claims, self._batch, queues, self.workers - 1)
            self._batch_jobs = (jobs, context)
        return self._results(self._batch, len(jobs))

    def release(self) -> None:
        """No more batches for now: each worker exits once it has sent its results (an exit
        takes tens of ms, unmapping what it mapped) while the caller goes on."""
        if self._pipes and not self._released:
            for pipe in self._pipes:
                with suppress(OSError):  # one that died is reported by its results
                    pipe.send_bytes(STOP)
            self._released = True

    def close(self) -> None:
        """Stops the workers: waits for their exit when they were released and every
        result was read, else terminates them at once."""
        for process in self._processes:
            if self._unread or not self._released:
                process.terminate()
        for process in self._processes:
            process.join()
        for pipe in self._pipes:
            pipe.close()
        self._processes.clear()  # the list the finalizer holds: it has nothing left to do
        self._pipes.clear()
        self._ended.clear()
        self._unread, self._released = 0, False

    def _results(self, batch: int, count: int) -> Iterator[Any]:
        waiting = self._waiting  # job -> (worker, result), read early
        owners = [0] * count
        for index in range(count):
            while index not in waiting:
                if batch != self._batch:
                    raise RuntimeError("these results were given up: a later map() took them")
                missing = f"result {index + 1} of {count}"
                if self._helping:
                    self._read_some(missing, wait=False)
                    if index in waiting or self._help():
                        continue
                self._read_some(missing)
            owners[index], data = waiting.pop(index)
            self._unread -= 1
            ok, value = data if isinstance(data, tuple) else _loaded(data)
            if not ok:
                raise value
            yield value
        self.owners = owners

    def _help(self) -> bool:
        """Run the next job this process can claim; False when none is left."""
        index = next(self._own, None)
        if index is None:
            return False
        jobs, context = self._batch_jobs
        try:
            outcome = (True, self.function(jobs[index], context))
        except Exception as exc:  # noqa: BLE001 - raised in its turn, like a worker's
            outcome = (False, exc)
        self._waiting[index] = (self.workers - 1, outcome)
        return True

    def _read_some(self, missing: str, wait: bool = True) -> None:
        """Read every result that has arrived into `_waiting`, waiting until one has unless
        `wait` is False; `missing` names the result wanted, for the error if none can come."""
        open_pipes = [p for i, p in enumerate(self._pipes) if i not in self._ended]
        if not open_pipes:
            if not wait:
                return
            raise WorkerDied(f"the workers ended without sending {missing}")
        for pipe in multiprocessing.connection.wait(open_pipes, None if wait else 0):
            worker = self._pipes.index(pipe)
            try:
                message = pipe.recv_bytes()
            except (EOFError, OSError):
                if not self._released:
                    raise self._died(worker, f"before sending {missing}") from None
                self._ended.add(worker)  # released: it left once it found no job to claim
                continue
            job = int.from_bytes(message[:JOB_BYTES], "little")
            self._waiting[job] = (worker, message[JOB_BYTES:])

    def _died(self, worker: int, when: str) -> WorkerDied:
        process = self._processes[worker]
        process.join(timeout=1)
        code = process.exitcode
        return WorkerDied(f"worker process {process.pid} ended (exit code {code}) {when}")

    def _started(self) -> list[Any]:
        if self._processes:
            return self._pipes
        methods = multiprocessing.get_all_start_methods()
        # fork shares what the parent loaded (a tokenizer, say) with the workers at no cost
        context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
        self._claims = context.Array("q", _back(self.workers - 1) + 1)
        for number in range(self.workers - 1 if self._helping else self.workers):
            ours, theirs = context.Pipe()
            self._pipes.append(ours)
            process = context.Process(
                target=_serve,
                args=(theirs, tuple(self._pipes), self.function, self._claims, number),
                daemon=True,
            )
            with _ctrl_c_held():  # a Ctrl-C meanwhile arrives once the worker is on the list
                try:
                    process.start()
                    self._processes.append(process)  # the finalizer's list too
                finally:
                    theirs.close()
        return self._pipes


def _terminate(processes: list[Any]) -> None:
    for process in processes:
        process.terminate()


@contextmanager
def _ctrl_c_held() -> Iterator[None]:
    """Ctrl-C held back while a worker starts, so it cannot kill the worker before the
    worker ignores it (the parent gets it as soon as the worker is running)."""
    if not hasattr(signal, "pthread_sigmask"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _loaded(data: bytes) -> tuple[bool, Any]:
    try:
        return pickle.loads(data)
    except Exception as exc:  # noqa: BLE001 - a result or error this process cannot rebuild
        return False, RuntimeError(f"a worker's result could not be read here: {exc!r}")


def _serve(
    pipe: Any,
    parent_ends: tuple[Any, ...],
    function: Callable[[Any, Any], Any],
    claims: Any,
    number: int,
) -> None:
    """A worker's life: batches of jobs in, one result per job out, until STOP or the
    parent is gone."""
    for end in parent_ends:
        end.close()  # so the parent's death reads as the end of the pipe
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # see _ctrl_c_held
    outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    parent_gone = threading.Event()
    sender = threading.Thread(target=_send_all, args=(pipe, outbox, parent_gone), daemon=True)
    sender.start()
    try:
        while not parent_gone.is_set():
            try:
                message = pipe.recv_bytes()
            except (EOFError, OSError):
                break
            if message == STOP:
                break
            batch, jobs, queues, context = pickle.loads(message)
            for index in _claimed(claims, batch, queues, number):
                if parent_gone.is_set():
                    break
                # the job's number ahead of its pickled outcome: one pickle, not two
                outcome = _outcome(function, jobs[index], context)
                outbox.put(index.to_bytes(JOB_BYTES, "little") + outcome)
    finally:
        outbox.put(None)
        sender.join()


def _claimed(claims: Any, batch: int, queues: list[list[int]], worker: int) -> Iterator[int]:
    """The jobs of this batch this worker claims, one at a time: from the front of its own
    queue (the one queue all share, without affinity), then from the back of the queue with
    the most left (its worker would reach those last), until none is left or the slots
    serve a later batch."""
    own = worker if len(queues) > 1 else 0
    while True:
        with claims.get_lock():
            slots = claims.get_obj()
            if slots[BATCH_SLOT] != batch:
                return
            left = [slots[_back(q)] - slots[_front(q)] for q in range(len(queues))]
            queue = own if left[own] > 0 else max(range(len(queues)), key=left.__getitem__)
            if left[queue] <= 0:
                return
            if queue == own:
                position = slots[_front(queue)]
                slots[_front(queue)] = position + 1
            else:
                position = slots[_back(queue)] - 1
                slots[_back(queue)] = position
        yield queues[queue][position]


def _outcome(function: Callable[[Any, Any], Any], job: Any, context: Any) -> bytes:
    try:
        return pickle.dumps((True, function(job, context)), pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # noqa: BLE001 - raised again in the parent, with this trace
        exc.add_note(f"in worker process {os.getpid()}:\n{traceback.format_exc()}")
        try:
            data = pickle.dumps((False, exc))
            pickle.loads(data)  # some exceptions pickle but cannot be rebuilt from their args
            return data
        except Exception:  # noqa: BLE001 - an exception that cannot travel as itself
            return pickle.dumps((False, RuntimeError("".join(traceback.format_exception(exc)))))


def _send_all(pipe: Any, outbox: queue.SimpleQueue[bytes | None], parent_gone: Any) -> None:
    while (data := outbox.get()) is not None:
        try:
            pipe.send_bytes(data)
        except OSError:
            parent_gone.set()
            return
