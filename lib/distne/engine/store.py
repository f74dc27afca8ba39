"""Where a barrier task keeps its leaves between steps: in memory, or on the executor's disk.

A barrier task (:mod:`distne.engine.exchange`) runs every step of a program over all of its
leaves. In memory, it holds every leaf's matrices and state from the first product to the
last: fastest, but the task's memory grows with the graph. On disk, it holds each leaf's
layout (own ids, halo ids, degrees: a few bytes per node) and loads one leaf's matrices and
state at a time, writing the new state back; the task's memory is then bounded by its largest
leaf (which the partition bounds) plus one step's halo, whatever the graph's size, and the
executor's local disk (``SPARK_LOCAL_DIRS``, where Spark spills too) holds the rest. Both give
the same bits: the arithmetic is the same, only where arrays wait between steps differs.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from distne.engine.program import DTYPE, LeafBlock


def _malloc_trim():
    try:  # the C library the process already runs on; only glibc has malloc_trim
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _malloc_trim()


def release_freed() -> None:
    """Give the C heap's freed pages back to the OS (glibc's ``malloc_trim``; elsewhere a no-op).

    A step's temporaries are freed when it ends, but glibc keeps freed pages of its heap for
    reuse, so a barrier task's resident memory stays at its busiest step's, beside the JVM
    and the other tasks. At 1M edges (two tasks, 7 leaves) a task sat at ~410 MB between the
    randomized SVD's products and ~290 MB once the freed pages were returned.
    """
    if _TRIM is not None:
        _TRIM(0)


def spark_local_dir(configured: str | None = None) -> str:
    """The first of Spark's local dirs: ``SPARK_LOCAL_DIRS`` (set in executors and their
    Python workers), else ``configured`` (``spark.local.dir``, on the driver), else the
    system's temporary folder."""
    dirs = os.environ.get("SPARK_LOCAL_DIRS") or configured or tempfile.gettempdir()
    return dirs.split(",")[0]


class MemoryStore:
    """Every leaf's block and state in this process."""

    spill_dir: str | None = None  # where large messages may wait (none: memory)

    def __init__(self) -> None:
        self.layout: dict[int, LeafBlock] = {}
        self._state: dict[int, np.ndarray] = {}

    def add(self, part: int, block: LeafBlock) -> None:
        """Take a leaf; its state starts with no columns."""
        self.layout[part] = block
        self._state[part] = np.zeros((len(block.own), 0), DTYPE)

    def parts(self) -> list[int]:
        """The leaves, in order (partial sums follow it, so reruns give the same bits)."""
        return sorted(self.layout)

    def block(self, part: int) -> LeafBlock:
        return self.layout[part]

    def state(self, part: int) -> np.ndarray:
        return self._state[part]

    def rows(self, part: int, idx: np.ndarray, start: int, width: int) -> np.ndarray:
        """Rows ``idx``, columns ``[start, start + width)`` of a leaf's state, contiguous."""
        return np.ascontiguousarray(self._state[part][idx, start : start + width])

    def set_state(self, part: int, x: np.ndarray) -> None:
        self._state[part] = x

    def set_block(self, part: int, block: LeafBlock) -> None:
        """Replace a leaf's block (the same layout, more matrices); its state stays."""
        self.layout[part] = block

    def save_state(self, part: int, path: str) -> None:
        """Write a leaf's state to ``path`` as a ``.npy`` file (a snapshot's copy)."""
        with open(path, "wb") as f:
            np.save(f, self._state[part])

    def states(self) -> Iterator[tuple[int, np.ndarray]]:
        """Every leaf's state, in order, one at a time."""
        for part in self.parts():
            yield part, self.state(part)

    def close(self) -> None:
        self.layout.clear()
        self._state.clear()


class DiskStore(MemoryStore):
    """Leaves' matrices and states in files under ``root``; layouts in memory.

    ``root`` is a fresh folder under the executor's first local dir; :meth:`close` removes it.
    """

    def __init__(self, root: str | None = None) -> None:
        super().__init__()
        self.root = root or tempfile.mkdtemp(prefix="distne-leaves-", dir=spark_local_dir())
        self.spill_dir = self.root

    def _path(self, part: int, what: str) -> str:
        return os.path.join(self.root, f"{part}.{what}")

    def add(self, part: int, block: LeafBlock) -> None:
        self.set_block(part, block)
        self.set_state(part, np.zeros((len(block.own), 0), DTYPE))

    def set_block(self, part: int, block: LeafBlock) -> None:
        # Pickled together, matrices that share index arrays (the derived ones share w's)
        # store them once.
        with open(self._path(part, "matrices"), "wb") as f:
            pickle.dump(block.matrices, f, protocol=pickle.HIGHEST_PROTOCOL)
        self.layout[part] = replace(block, matrices={})

    def block(self, part: int) -> LeafBlock:
        with open(self._path(part, "matrices"), "rb") as f:
            return replace(self.layout[part], matrices=pickle.load(f))

    def state(self, part: int) -> np.ndarray:
        return np.load(self._path(part, "npy"))

    def rows(self, part: int, idx: np.ndarray, start: int, width: int) -> np.ndarray:
        # Memory-mapped: only the pages holding these rows are read, and unmapped after.
        x = np.load(self._path(part, "npy"), mmap_mode="r")
        return np.ascontiguousarray(x[idx, start : start + width])

    def set_state(self, part: int, x: np.ndarray) -> None:
        # A new file, never written in place: a snapshot may hold a link to the old one.
        tmp = self._path(part, "tmp.npy")
        np.save(tmp, x)
        os.replace(tmp, self._path(part, "npy"))

    def save_state(self, part: int, path: str) -> None:
        """A snapshot's copy of a leaf's state: a hard link to the store's file where
        ``path`` is on the same file system (no bytes written; the file stays the snapshot's
        when the state moves on, since :meth:`set_state` replaces files rather than writing
        into them), a copy elsewhere.

        At 100M edges a copy of the state was ~15 GB written at every snapshot, and the
        disk held two of them while the newer one was written.
        """
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)  # what an interrupted snapshot left: never written into
        try:
            os.link(self._path(part, "npy"), path)
        except OSError:
            shutil.copyfile(self._path(part, "npy"), path)

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.root, ignore_errors=True)
