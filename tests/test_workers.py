"""Worker processes that claim jobs, keep them on their worker across batches and take
over another's last ones, with the caller helping or not (issueminer.collect.workers), with real
processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from issueminer.collect.workers import WorkerDied, Workers


def whoami(job: int, context: str) -> tuple[int, str, int]:
    return job, context, os.getpid()


def fail_on_three(job: int, _context: None) -> int:
    if job == 3:
        raise ValueError(f"job {job} cannot be done")
    return job


def _refuse_to_load() -> None:
    raise TypeError("cannot be rebuilt here")


class UnbuildableError(Exception):
    """Pickles, but cannot be rebuilt where it is unpickled (like an exception whose
    __init__ takes other arguments than it passes on)."""

    def __reduce__(self) -> tuple:
        return _refuse_to_load, ()


def fail_unbuildably(job: int, _context: None) -> int:
    raise UnbuildableError(f"job {job}: broken beyond rebuilding")


def die_on_two(job: int, _context: None) -> int:
    if job == 2:
        time.sleep(0.5)  # lets the worker's sender hand over job 0's result first
        os.kill(os.getpid(), signal.SIGKILL)
    return job


def big_result_and_mark(job: int, folder: str) -> bytes:
    Path(folder, f"done-{job}").touch()
    return bytes(1 << 20)  # far more than a pipe holds


def pid_then_sleep(job: int, folder: str) -> None:
    Path(folder, f"worker-{os.getpid()}").touch()
    time.sleep(60)
    Path(folder, f"done-{os.getpid()}").touch()  # only if nothing stopped it


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is not alive, whatever kill says
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except FileNotFoundError:
        return False


def wait_until(condition, seconds: float = 20) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def last_to_finish(job: int, barrier: tuple[str, int]) -> int:
    """Job 0 is the first to start and the last to end: the `others` start once it has
    (files in `folder`), and it ends once they have all run. So whoever holds job 0 is held
    up for as long as they take, and they must be run by another worker. Each wait is given
    up after 30 s, when the test fails on who ran what rather than hanging."""
    folder, others = barrier
    Path(folder).mkdir(exist_ok=True)
    if job == 0:
        Path(folder, "0").touch()
        wait_until(lambda: len(list(Path(folder).iterdir())) == 1 + others, 30)
    else:
        wait_until(lambda: Path(folder, "0").exists(), 30)
        Path(folder, str(job)).touch()
    return os.getpid()


def whoami_slowly(job: int, seconds: float) -> tuple[int, float, int]:
    """Long enough that every worker is running before any runs out of its own jobs."""
    time.sleep(seconds)
    return job, seconds, os.getpid()


def test_results_come_in_job_order_and_owners_name_the_worker_of_each() -> None:
    workers = Workers(3, whoami)
    try:
        first = list(workers.map(list(range(30)), "questions"))
        owners = workers.owners
        second = list(workers.map(list(range(4)), "other", affinity=owners))  # not these jobs
        assert list(workers.map([], "none", affinity=[])) == []
    finally:
        workers.close()
    assert [job for job, _, _ in first] == list(range(30))
    assert {context for _, context, _ in first} == {"questions"}
    pids = sorted({pid for _, _, pid in first})
    assert len(owners) == 30 and set(owners) <= {0, 1, 2}
    for worker in set(owners):  # an owner is one process
        assert len({pid for job, _, pid in first if owners[job] == worker}) == 1
    assert [job for job, _, _ in second] == [0, 1, 2, 3] and os.getpid() not in pids


def test_a_later_batch_keeps_each_job_on_the_worker_that_ran_it() -> None:
    workers = Workers(2, whoami_slowly)
    try:
        first = list(workers.map(list(range(6)), 0.2))  # long: both take three
        owners = workers.owners
        second = list(workers.map(list(range(6)), 0.05, affinity=owners))
    finally:
        workers.close()
    assert len({pid for _, _, pid in first}) == 2
    assert [pid for _, _, pid in second] == [pid for _, _, pid in first]  # job by job
    assert workers.owners == owners


def test_a_worker_done_with_its_own_jobs_takes_over_the_last_of_another(tmp_path: Path) -> None:
    workers = Workers(2, last_to_finish)
    try:
        affinity = [0] * 5 + [1] * 5
        ran_on = list(workers.map(list(range(10)), (str(tmp_path), 9), affinity=affinity))
        owners = workers.owners
    finally:
        workers.close()
    # worker 0 is held up by job 0; worker 1 does its own five, then takes 4, 3, 2 and 1
    # from the back of worker 0's queue rather than wait for it
    assert owners == [0] + [1] * 9
    assert ran_on.count(ran_on[0]) == 1 and len(set(ran_on[1:])) == 1


def test_idle_workers_claim_the_jobs_so_a_slow_one_takes_fewer(tmp_path: Path) -> None:
    workers = Workers(2, last_to_finish)
    try:
        ran_on = list(workers.map(list(range(10)), (str(tmp_path), 9)))
    finally:
        workers.close()
    # with jobs dealt out in turn, the worker held up by job 0 would also run 2, 4, 6, 8
    assert ran_on.count(ran_on[0]) == 1 and len(set(ran_on[1:])) == 1


def test_an_error_in_a_job_is_raised_in_the_caller_with_the_workers_trace() -> None:
    workers = Workers(2, fail_on_three)
    try:
        results = workers.map(list(range(6)), None)
        assert [next(results) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(ValueError, match="job 3 cannot be done") as raised:
            next(results)
        assert any("fail_on_three" in note for note in raised.value.__notes__)
        # the batch was abandoned half read: the next one gets fresh workers and its own results
        assert list(workers.map([10, 11, 12], None)) == [10, 11, 12]
    finally:
        workers.close()


def test_an_error_that_cannot_be_rebuilt_still_says_what_and_where() -> None:
    workers = Workers(1, fail_unbuildably)
    try:
        with pytest.raises(RuntimeError) as raised:
            next(workers.map([7], None))
    finally:
        workers.close()
    message = str(raised.value)
    assert "UnbuildableError: job 7: broken beyond rebuilding" in message
    assert "fail_unbuildably" in message  # the worker's traceback


def test_results_of_a_batch_given_up_are_refused_not_mixed_with_the_next() -> None:
    workers = Workers(2, whoami)
    try:
        first = workers.map([0, 1, 2, 3], "first")
        second = workers.map([0, 1], "second")  # before anything of the first was read
        assert [context for _, context, _ in second] == ["second", "second"]
        with pytest.raises(RuntimeError, match="given up"):
            next(first)
    finally:
        workers.close()


def test_a_worker_dead_between_batches_is_reported_when_the_next_starts() -> None:
    workers = Workers(2, whoami_slowly)
    try:
        pids = [pid for _, _, pid in workers.map([0, 1], 0.5, affinity=[0, 1])]
        os.kill(pids[1], signal.SIGKILL)
        dead = next(p for p in workers._processes if p.pid == pids[1])
        assert wait_until(lambda: not dead.is_alive())  # as the parent sees it (waitpid)
        with pytest.raises(WorkerDied, match=rf"worker process {pids[1]} ended \(exit code -9\)"):
            list(workers.map([0, 1], 0.0))
    finally:
        workers.close()


def test_a_worker_that_dies_is_reported_not_waited_for() -> None:
    workers = Workers(2, die_on_two)
    try:
        results = workers.map(list(range(6)), None)
        assert [next(results), next(results)] == [0, 1]
        with pytest.raises(WorkerDied, match=r"ended \(exit code -9\) before sending result 3"):
            next(results)
    finally:
        workers.close()


def test_a_worker_goes_on_while_the_caller_does_not_read(tmp_path: Path) -> None:
    workers = Workers(2, big_result_and_mark)
    try:
        results = workers.map(list(range(8)), str(tmp_path))
        # nothing read yet, and each result is larger than a pipe: every job runs all the same
        assert wait_until(lambda: len(list(tmp_path.glob("done-*"))) == 8)
        assert [len(r) for r in results] == [1 << 20] * 8
    finally:
        workers.close()


def test_released_workers_exit_and_a_later_batch_starts_new_ones() -> None:
    workers = Workers(2, whoami_slowly)
    try:
        before = {pid for _, _, pid in workers.map([0, 1], 0.5, affinity=[0, 1])}
        workers.release()
        assert wait_until(lambda: not any(alive(pid) for pid in before))
        after = {pid for _, _, pid in workers.map([0, 1], 0.5, affinity=[0, 1])}
        assert len(after) == 2 and not after & before
    finally:
        workers.close()


def test_close_stops_busy_workers_at_once(tmp_path: Path) -> None:
    workers = Workers(2, pid_then_sleep)
    workers.map([0, 1], str(tmp_path))
    assert wait_until(lambda: len(list(tmp_path.glob("worker-*"))) == 2)
    pids = [int(p.name.split("-")[1]) for p in tmp_path.glob("worker-*")]
    workers.close()
    assert not any(alive(pid) for pid in pids)
    assert not list(tmp_path.glob("done-*")), "close() waited for the jobs to end"


def test_workers_end_when_their_parent_is_killed(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from test_workers import whoami_slowly
        from issueminer.collect.workers import Workers
        workers = Workers(2, whoami_slowly)
        pids = {{pid for _, _, pid in workers.map([0, 1], 0.5, affinity=[0, 1])}}
        print(*pids, flush=True)
        time.sleep(60)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        pids = [int(p) for p in parent.stdout.readline().split()]
        assert len(pids) == 2 and all(alive(pid) for pid in pids)
        parent.kill()
        parent.wait()
        assert wait_until(lambda: not any(alive(pid) for pid in pids))
    finally:
        parent.kill()
        parent.stdout.close()


def fail_on_three_slowly(job: int, _context: None) -> int:
    """Job 3 fails at once; the others take long enough that the caller claims job 3."""
    if job == 3:
        raise ValueError(f"job {job} cannot be done")
    time.sleep(0.2)
    return job


def test_a_helping_caller_runs_jobs_itself_between_the_results() -> None:
    workers = Workers(2, whoami_slowly, helping=True)
    try:
        first = list(workers.map(list(range(6)), 0.5))  # long: the worker starts meanwhile
        owners = workers.owners
        second = list(workers.map(list(range(6)), 0.2, affinity=owners))
        started = len(workers._processes)
    finally:
        workers.close()
    assert [job for job, _, _ in first] == list(range(6))
    pids = [pid for _, _, pid in first]
    assert started == 1 and len(set(pids)) == 2 and os.getpid() in pids
    # the caller is the last worker, and a later batch keeps its jobs with it
    assert [owner == 1 for owner in owners] == [pid == os.getpid() for pid in pids]
    assert [pid for _, _, pid in second] == pids and workers.owners == owners


def test_a_helping_caller_and_its_worker_take_over_each_others_last_jobs(
    tmp_path: Path,
) -> None:
    workers = Workers(2, last_to_finish, helping=True)
    try:
        # the worker process is held up by job 0: the caller does its own five, then
        # takes 4, 3, 2 and 1 from the back of the worker's queue
        barrier = (str(tmp_path / "first"), 9)
        ran_on = list(workers.map(list(range(10)), barrier, affinity=[0] * 5 + [1] * 5))
        assert workers.owners == [0] + [1] * 9
        assert ran_on[0] != os.getpid() and set(ran_on[1:]) == {os.getpid()}
        # the caller is held up by job 0 (its own): the worker takes over its other four
        barrier = (str(tmp_path / "second"), 9)
        ran_on = list(workers.map(list(range(10)), barrier, affinity=[1] * 5 + [0] * 5))
        assert workers.owners == [1] + [0] * 9
        assert ran_on[0] == os.getpid() and os.getpid() not in ran_on[1:]
    finally:
        workers.close()


def test_an_error_in_the_helping_callers_own_job_is_raised_in_its_turn() -> None:
    workers = Workers(2, fail_on_three_slowly, helping=True)
    try:
        # job 3 is the caller's: it fails before the worker's job 0 is done
        results = workers.map(list(range(6)), None, affinity=[0, 0, 0, 1, 0, 0])
        assert [next(results) for _ in range(3)] == [0, 1, 2]
        with pytest.raises(ValueError, match="job 3 cannot be done") as raised:
            next(results)
        assert raised.traceback[-1].name == "fail_on_three_slowly"  # raised here, as it was
        assert list(workers.map([10, 11], None)) == [10, 11]  # fresh workers, own results
    finally:
        workers.close()


def test_a_helping_caller_needs_a_worker_beside_it() -> None:
    with pytest.raises(ValueError, match="at least one worker process"):
        Workers(1, whoami, helping=True)


def die_on_two_unless_in(job: int, caller: int) -> int:
    """Job 2 kills the worker process that runs it (never the caller, here the test); the
    others take long enough that the worker claims job 2 before the caller could."""
    if job != 2:
        time.sleep(0.2)
    elif os.getpid() != caller:
        os.kill(os.getpid(), signal.SIGKILL)
    return job


def test_a_worker_that_dies_beside_a_helping_caller_is_reported_not_waited_for() -> None:
    workers = Workers(2, die_on_two_unless_in, helping=True)
    try:
        # job 2 is the worker's: the caller, busy with its own, learns of the death the next
        # time it looks for results, at the latest when it needs result 3
        got = []
        with pytest.raises(WorkerDied, match=r"worker process \d+ ended \(exit code -9\)"):
            for result in workers.map(list(range(6)), os.getpid(), affinity=[1, 1, 0, 1, 1, 1]):
                got.append(result)
        assert got == list(range(len(got))) and len(got) <= 2
    finally:
        workers.close()
