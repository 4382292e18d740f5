"""Fill jobs and the queue that runs them one at a time on the server's device.

A job waits in a bounded queue (FillQueue.submit raises QueueFull at once when it is full: the answer is
429, never a wait), then one worker thread runs it. Its progress and end are published to any number of
asyncio listeners (Job.next_change); cancelling a waiting job drops it, cancelling a running one stops it
at its next level (the fill's progress callback raises)."""
import asyncio
import queue
import secrets
import threading
from collections import OrderedDict

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)


class QueueFull(Exception):
    """Every place in the queue is taken."""


class Cancelled(Exception):
    """Raised inside the fill's progress callback to stop a cancelled job."""


class Job:
    """One fill: `work(on_progress)` returns the result; state, progress and result are read by the
    request handlers while the worker thread runs it."""

    def __init__(self, work):
        self.id = secrets.token_urlsafe(12)
        self.work = work
        self.state = QUEUED
        self.fraction, self.label = 0.0, "waiting for the fills before it"
        self.result = None  # what work() returned
        self.error = None  # why it failed, one line
        self.version = 0  # bumped at every change; listeners wait for it to move
        self._cancel = threading.Event()
        self._lock = threading.Lock()
        self._waiters = []  # (event loop, future) of listeners waiting for the next change

    @property
    def finished(self):
        return self.state in FINISHED

    def cancel(self):
        self._cancel.set()

    def run(self):
        """Run the work in this (the worker's) thread; every outcome is recorded, nothing is raised."""
        if self._cancel.is_set():
            return self._update(state=CANCELLED, label="cancelled")
        self._update(state=RUNNING, label="starting")
        try:
            result = self.work(self._progress)
        except Cancelled:
            self._update(state=CANCELLED, label="cancelled")
        except Exception as exc:  # noqa: BLE001 - a failed fill is this job's answer; the worker goes on
            self._update(state=FAILED, label="failed", error=f"the fill failed: {type(exc).__name__}: {exc}")
        else:
            self._update(state=DONE, fraction=1.0, label="done", result=result)

    def _progress(self, fraction, label):
        if self._cancel.is_set():
            raise Cancelled
        self._update(fraction=float(fraction), label=label)

    def _update(self, **changes):
        with self._lock:
            for name, value in changes.items():
                setattr(self, name, value)
            self.version += 1
            waiters, self._waiters = self._waiters, []
        for loop, future in waiters:
            loop.call_soon_threadsafe(_resolve, future)

    async def next_change(self, seen):
        """Return once `version` differs from `seen` (at once if it already does)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        with self._lock:
            if self.version != seen:
                return
            self._waiters.append((loop, future))
        await future


def _resolve(future):
    if not future.done():
        future.set_result(None)


class FillQueue:
    """One worker thread running jobs in order; at most `size` jobs wait while one runs. Finished jobs are
    kept (for their result) until taken, or until `keep` newer ones have finished."""

    def __init__(self, size, keep=8):
        if size < 1:
            raise ValueError("the queue must hold at least one waiting fill")
        self._waiting = queue.Queue(maxsize=size)
        self._jobs = OrderedDict()
        self._keep = keep
        self._lock = threading.Lock()
        self._worker = threading.Thread(target=self._serve, name="npsynth-fill", daemon=True)
        self._worker.start()

    def submit(self, work):
        """A new Job for `work`, queued; QueueFull if no place is free."""
        job = Job(work)
        with self._lock:
            try:
                self._waiting.put_nowait(job)
            except queue.Full:
                raise QueueFull from None
            self._jobs[job.id] = job
        return job

    def get(self, job_id):
        return self._jobs.get(job_id)

    def forget(self, job_id):
        with self._lock:
            self._jobs.pop(job_id, None)

    def close(self):
        """Cancel every job and stop the worker once its current job ends."""
        with self._lock:
            for job in self._jobs.values():
                job.cancel()
        self._waiting.put(None)  # a place frees at once: the worker ends cancelled jobs without work
        self._worker.join()

    def _serve(self):
        while True:
            job = self._waiting.get()
            if job is None:
                return
            job.run()
            self._evict_finished()

    def _evict_finished(self):
        with self._lock:
            finished = [job_id for job_id, job in self._jobs.items() if job.finished]
            for job_id in finished[:max(0, len(finished) - self._keep)]:
                del self._jobs[job_id]
