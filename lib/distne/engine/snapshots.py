"""The exchange's state, saved every few products, and a program resumed from it.

A program (:mod:`distne.engine.program`) is straight-line code over a backend whose only
inputs from the backend are the reductions' small results. So a program resumes exactly
from a snapshot that holds every leaf's state after product ``k`` and the results of every
backend call up to it: :class:`Resumable` runs the program from its start, answers the calls
up to the snapshot from that log without doing them, loads the states, and goes on doing the
rest. The vectors are the same bits as an undisturbed run's.

On disk, under the snapshot folder (one per run, see :mod:`distne.stages`)::

    products-<k>/leaf-<part>.npy   every leaf's state after product k
    products-<k>/task-<rank>.log   the log, written by each task after its leaves: the mark
                                   that this task's part of snapshot k is whole

A task resumes from the newest ``k`` that every task has whole (agreed over the mesh), so a
folder that only some tasks can see (local disks of different machines) makes them restart
together rather than disagree. The same snapshot serves a rerun of the whole command and
Spark's retry of a failed barrier stage.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import sys
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from distne.engine.program import Product
from distne.sparkutil import hadoop_path, read_bytes, write_bytes

_STEP = re.compile(r"^products-(\d+)$")


def _step_dir(root: str, k: int) -> str:
    return os.path.join(root, f"products-{k}")


def _whole_for(root: str, rank: int) -> list[int]:
    """The snapshots whose part for task ``rank`` is whole."""
    if not os.path.isdir(root):
        return []
    found = []
    for name in os.listdir(root):
        m = _STEP.match(name)
        if m and os.path.exists(os.path.join(root, name, f"task-{rank}.log")):
            found.append(int(m.group(1)))
    return sorted(found)


def newest_complete(root: str | None) -> int:
    """Products done in the newest snapshot whole for every task that wrote it (0: none)."""
    if not root or not os.path.isdir(root):
        return 0
    best = 0
    for name in os.listdir(root):
        m = _STEP.match(name)
        if not m:
            continue
        logs = [f for f in os.listdir(os.path.join(root, name)) if f.endswith(".log")]
        want = _tasks_of(os.path.join(root, name))
        if want and len(logs) >= want:
            best = max(best, int(m.group(1)))
    return best


def _tasks_of(step_dir: str) -> int:
    for f in os.listdir(step_dir):
        if f.endswith(".log"):
            try:
                with open(os.path.join(step_dir, f), "rb") as fh:
                    return int(pickle.load(fh)["tasks"])
            except (OSError, EOFError, pickle.UnpicklingError, KeyError):
                continue
    return 0


def _atomic_save(path: str, write: Callable[[str], None]) -> None:
    tmp = path + ".tmp"
    write(tmp)
    os.replace(tmp, path)


class Resumable:
    """A backend that saves the state every ``every`` products and resumes from a snapshot.

    Args:
        backend: the backend that does the work (its ``products_done`` is kept in step with
            the program, replayed products included).
        saver: where snapshots go (:class:`TaskFiles` in a barrier task,
            :class:`ShuffleSnapshots` on the driver of the shuffle transport).
        every: products between snapshots (0: never save).
    """

    def __init__(self, backend: Any, saver: Any, every: int):
        self.backend, self.saver, self.every = backend, saver, every
        self.n = backend.n
        self.calls = 0  # backend calls made by the program so far
        self.log: list[Any] = []  # their results, in order
        self.resume_at, saved = saver.resume_point()
        self._replay: list[Any] = saved["log"] if saved else []
        self._resume_calls = int(saved["calls"]) if saved else 0

    @property
    def products_done(self) -> int:
        return self.backend.products_done

    def _call(self, do: Callable[[], Any]) -> Any:
        self.calls += 1
        if self.calls <= self._resume_calls:
            result = self._replay[self.calls - 1]
            if self.calls == self._resume_calls:
                self.saver.load(self.resume_at)
                self.backend.products_done = self.resume_at
        else:
            result = do()
        self.log.append(result)
        return result

    def product(self, op: Product, gram: tuple[int, int] | None = None) -> np.ndarray | None:
        if self.calls < self._resume_calls:
            self.backend.products_done += 1  # replayed: counted, not done
        result = self._call(lambda: self.backend.product(op, gram))
        done = self.backend.products_done
        if self.calls > self._resume_calls and self.every and done % self.every == 0:
            self.saver.save(done, {"log": self.log, "calls": self.calls})
        return result

    def gram(self, start: int, width: int, pre: np.ndarray | None = None) -> np.ndarray:
        return self._call(lambda: self.backend.gram(start, width, pre))

    def column_signs(self, start: int, width: int, pre: np.ndarray) -> np.ndarray:
        return self._call(lambda: self.backend.column_signs(start, width, pre))

    def map_rows(self, fn: Callable[..., np.ndarray], degree: bool = False) -> None:
        self._call(lambda: self.backend.map_rows(fn, degree))

    def edge_map(self, block: tuple[int, int], fn: Any) -> None:
        raise TypeError(
            "edge maps belong in Program.prepare, which runs again on every run: a snapshot "
            "holds the state, not the matrices"
        )


class TaskFiles:
    """A barrier task's snapshots: its leaves' states and the log, as files under ``root``.

    Args:
        store: where the task's leaves' states are (``parts``, ``set_state``, ``save_state``).
        agree: given this task's whole snapshots, the newest one every task has (over the
            mesh: the same answer on every task).
        barrier: returns once every task has called it.
        report: tells the driver how many products are done.
    """

    def __init__(
        self,
        root: str,
        rank: int,
        tasks: int,
        store: Any,
        agree: Callable[[list[int]], int],
        barrier: Callable[[], None],
        report: Callable[[int], None],
    ):
        self.root, self.rank, self.tasks, self.store = root, rank, tasks, store
        self.agree, self.barrier, self.report = agree, barrier, report

    def resume_point(self) -> tuple[int, dict | None]:
        k = self.agree(_whole_for(self.root, self.rank))
        if not k:
            return 0, None
        with open(os.path.join(_step_dir(self.root, k), f"task-{self.rank}.log"), "rb") as f:
            saved = pickle.load(f)
        # Said in the task's log (the executor's stderr): this attempt did not start over.
        print(
            f"[distne] exchange task {self.rank}: resuming after product {k} from {self.root}",
            file=sys.stderr,
            flush=True,
        )
        return k, saved

    def load(self, k: int) -> None:
        step = _step_dir(self.root, k)
        for part in self.store.parts():
            self.store.set_state(part, np.load(os.path.join(step, f"leaf-{part}.npy")))
        self.report(k)

    def save(self, done: int, record: dict) -> None:
        step = _step_dir(self.root, done)
        os.makedirs(step, exist_ok=True)
        for part in self.store.parts():
            path = os.path.join(step, f"leaf-{part}.npy")
            _atomic_save(path, partial(self.store.save_state, part))
        record = {**record, "tasks": self.tasks}
        _atomic_save(os.path.join(step, f"task-{self.rank}.log"), lambda p: _dump(p, record))
        # Every task has its part of this snapshot: the older ones are no longer needed.
        self.barrier()
        for k in _whole_for(self.root, self.rank):
            if k < done:
                self._drop(k)

    def _drop(self, k: int) -> None:
        """Remove this task's part of snapshot ``k``, and the folder once it is empty (tasks
        sharing the folder race for that: whoever finds it gone has nothing to do)."""
        step = _step_dir(self.root, k)
        names = [f"task-{self.rank}.log"] + [f"leaf-{p}.npy" for p in self.store.parts()]
        for name in names:
            with contextlib.suppress(FileNotFoundError):
                os.remove(os.path.join(step, name))
        with contextlib.suppress(OSError):
            os.rmdir(step)  # fails unless empty: another task's part is still there


class ShuffleSnapshots:
    """The shuffle transport's snapshots, written by Spark on any Hadoop file system:
    ``products-<k>/state`` (the state RDD as pickle files) and ``products-<k>/log`` (written
    after it: the mark that snapshot ``k`` is whole)."""

    def __init__(self, spark: Any, root: str, exchange: Any):
        self.spark, self.root, self.exchange = spark, root.rstrip("/"), exchange

    def resume_point(self) -> tuple[int, dict | None]:
        k = newest_shuffle_snapshot(self.spark, self.root)
        if not k:
            return 0, None
        return k, pickle.loads(read_bytes(self.spark, f"{self.root}/products-{k}/log"))

    def load(self, k: int) -> None:
        self.exchange.restore(self.spark.sparkContext.pickleFile(f"{self.root}/products-{k}/state"))

    def save(self, done: int, record: dict) -> None:
        step = f"{self.root}/products-{done}"
        self.exchange.state.saveAsPickleFile(f"{step}/state")
        write_bytes(self.spark, f"{step}/log", pickle.dumps(record, pickle.HIGHEST_PROTOCOL))
        fs, root = hadoop_path(self.spark, self.root)
        for status in fs.listStatus(root):
            m = _STEP.match(status.getPath().getName())
            if m and int(m.group(1)) < done:
                fs.delete(status.getPath(), True)


def newest_shuffle_snapshot(spark: Any, root: str) -> int:
    """Products done in the newest whole snapshot of the shuffle transport under ``root``."""
    fs, jroot = hadoop_path(spark, root)
    if not fs.exists(jroot):
        return 0
    best = 0
    for status in fs.listStatus(jroot):
        m = _STEP.match(status.getPath().getName())
        if m and fs.exists(hadoop_path(spark, f"{root}/{m.group(0)}/log")[1]):
            best = max(best, int(m.group(1)))
    return best


def _dump(path: str, record: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(record, f, protocol=pickle.HIGHEST_PROTOCOL)
