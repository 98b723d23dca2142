"""Where the pieces of a plain file are scanned: one after another in this process
(`SerialExecutor`), on this process and worker processes beside it (`ProcessExecutor`), or
as tasks on a Dask cluster (`DaskExecutor`). Each runs `scans.run_job` and hands back the
results in file order; the crawler stores them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Protocol

from issueminer.collect.sodump.file_pieces import _unmap
from issueminer.collect.sodump.scans import Found, Job, run_job
from issueminer.collect.workers import Workers


class Executor(Protocol):
    """Where pieces run: this process, worker processes, or a Dask cluster."""

    workers: int
    owners: list[int]  # worker index per job of the last batch, where the executor knows

    def map(
        self, jobs: list[Job], context: dict[str, Any], affinity: list[int] | None = None
    ) -> Iterator[Found]:
        """Results in job order; `affinity` (an earlier batch's `owners`) asks for each
        job on the worker that ran the same piece before."""

    def release(self) -> None:
        """No more jobs for now: workers may wind down while the caller stores the last."""

    def close(self) -> None: ...


class SerialExecutor:
    """Pieces one after another in this process."""

    workers = 1
    owners: list[int] = []

    def map(
        self, jobs: list[Job], context: dict[str, Any], affinity: list[int] | None = None
    ) -> Iterator[Found]:
        for job in jobs:
            yield run_job(job, context)

    def release(self) -> None:
        pass

    def close(self) -> None:
        _unmap()


class ProcessExecutor(Workers):
    """Pieces on N workers: this process and N - 1 others (see `issueminer.collect.workers`);
    results in file order.

    This process scans whenever the next result to store has not come in. The other
    workers start with the first phase and serve every later one until `close`, so a phase
    costs no process start-up. In the questions phase idle workers claim the next piece;
    later phases give each piece to the worker that scanned it for questions, whose pages
    of it are still mapped (another worker would fault them in again, about a tenth of the
    scan's CPU time).
    """

    def __init__(self, workers: int) -> None:
        super().__init__(workers, run_job, helping=True)

    def close(self) -> None:
        _unmap()  # this process scanned too; unmapped while the workers exit (tens of ms each)
        super().close()


class DaskExecutor:
    """Pieces as tasks on a Dask cluster; every worker must see the dump at the same path."""

    def __init__(self, scheduler: str | None = None, workers: int = 1) -> None:
        from dask.distributed import Client, LocalCluster

        self.cluster = None
        if scheduler is None:
            self.cluster = LocalCluster(
                n_workers=workers, threads_per_worker=1, dashboard_address=None
            )
            scheduler = self.cluster.scheduler_address
        self.client = Client(scheduler)
        self.workers = max(1, len(self.client.scheduler_info().get("workers", {})))
        self.owners: list[int] = []  # Dask places tasks itself

    def map(
        self, jobs: list[Job], context: dict[str, Any], affinity: list[int] | None = None
    ) -> Iterator[Found]:
        shared = self.client.scatter(context, broadcast=True)
        futures = self.client.map(run_job, jobs, context=shared, pure=False)
        try:
            for future in futures:
                yield future.result()
        finally:
            self.client.cancel(futures)

    def release(self) -> None:
        pass  # the cluster outlives the scan

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()
