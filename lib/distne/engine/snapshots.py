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
from typing import Any

import numpy as np

from distne.engine.program import Product

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


def newest_complete(root: str | None, tasks: int | None = None) -> int:
    """Products done in the newest snapshot whole for every task (0: none). ``tasks``: how
    many tasks wrote it (default: as many as the snapshot's logs say)."""
    if not root or not os.path.isdir(root):
        return 0
    best = 0
    for name in os.listdir(root):
        m = _STEP.match(name)
        if not m:
            continue
        logs = [f for f in os.listdir(os.path.join(root, name)) if f.endswith(".log")]
        want = tasks or _tasks_of(os.path.join(root, name))
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
        backend: the task's backend (``products_done`` is kept in step with the program).
        store: where the task's leaves' states are (``states()``, ``set_state``).
        root: the snapshot folder.
        rank, tasks: this task and how many there are.
        every: products between snapshots (0: never save).
        agree: ``agree(k)`` returns the snapshot all tasks resume from, given this task's
            newest whole one (the mesh's minimum over tasks).
        barrier: called after a snapshot, before older ones are removed.
    """

    def __init__(
        self,
        backend: Any,
        store: Any,
        root: str,
        rank: int,
        tasks: int,
        every: int,
        agree: Callable[[list[int]], int],
        barrier: Callable[[], None],
    ):
        self.backend, self.store, self.root = backend, store, root
        self.rank, self.tasks, self.every, self.barrier = rank, tasks, every, barrier
        self.n = backend.n
        self.calls = 0  # backend calls made by the program so far
        self.log: list[Any] = []  # their results, in order
        self.resume_at = agree(_whole_for(root, rank))
        self._replay: list[Any] = []
        self._resume_calls = 0
        if self.resume_at:
            with open(os.path.join(_step_dir(root, self.resume_at), f"task-{rank}.log"), "rb") as f:
                saved = pickle.load(f)
            self._replay, self._resume_calls = saved["log"], saved["calls"]
            # Said in the task's log (the executor's stderr): this attempt did not start over.
            print(
                f"[distne] exchange task {rank}: resuming after product {self.resume_at} from "
                f"{root}",
                file=sys.stderr,
                flush=True,
            )

    @property
    def products_done(self) -> int:
        return self.backend.products_done

    def _call(self, do: Callable[[], Any]) -> Any:
        self.calls += 1
        if self.calls <= self._resume_calls:
            result = self._replay[self.calls - 1]
            if self.calls == self._resume_calls:
                self._load()
        else:
            result = do()
        self.log.append(result)
        return result

    def _load(self) -> None:
        step = _step_dir(self.root, self.resume_at)
        for part in self.store.parts():
            self.store.set_state(part, np.load(os.path.join(step, f"leaf-{part}.npy")))
        self.backend.products_done = self.resume_at
        self.backend.report(self.resume_at)

    def product(self, op: Product, gram: tuple[int, int] | None = None) -> np.ndarray | None:
        if self.calls < self._resume_calls:
            self.backend.products_done += 1  # replayed: counted, not done
        result = self._call(lambda: self.backend.product(op, gram))
        done = self.backend.products_done
        if self.calls > self._resume_calls and self.every and done % self.every == 0:
            self._save(done)
        return result

    def gram(self, start: int, width: int, pre: np.ndarray | None = None) -> np.ndarray:
        return self._call(lambda: self.backend.gram(start, width, pre))

    def column_signs(self, start: int, width: int, pre: np.ndarray) -> np.ndarray:
        return self._call(lambda: self.backend.column_signs(start, width, pre))

    def map_rows(self, fn: Callable[[np.ndarray], np.ndarray]) -> None:
        self._call(lambda: self.backend.map_rows(fn))

    def _save(self, done: int) -> None:
        step = _step_dir(self.root, done)
        os.makedirs(step, exist_ok=True)
        for part, x in self.store.states():
            _atomic_save(os.path.join(step, f"leaf-{part}.npy"), lambda p, x=x: _save_npy(p, x))
        record = {"log": self.log, "calls": self.calls, "tasks": self.tasks}
        _atomic_save(
            os.path.join(step, f"task-{self.rank}.log"),
            lambda p: _dump(p, record),
        )
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


def _save_npy(path: str, x: np.ndarray) -> None:
    with open(path, "wb") as f:
        np.save(f, x)


def _dump(path: str, record: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(record, f, protocol=pickle.HIGHEST_PROTOCOL)
