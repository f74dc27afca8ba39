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
import itertools
import os
import pickle
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import replace

import numpy as np

from distne.engine.program import DTYPE, Columns, Kept, LeafBlock, stacked


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

    def set_state(self, part: int, x: Columns) -> None:
        """A leaf's new state: an array, or a step's column blocks (:func:`stacked`)."""
        self._state[part] = stacked(x, self._state[part])

    def set_block(self, part: int, block: LeafBlock) -> None:
        """Replace a leaf's block (the same layout, more matrices); its state stays."""
        self.layout[part] = block

    def save_state(self, part: int, path: str) -> None:
        """Write a leaf's state to ``path`` as a ``.npy`` file (a snapshot's copy)."""
        with open(path, "wb") as f:
            np.save(f, self.state(part))

    def states(self) -> Iterator[tuple[int, np.ndarray]]:
        """Every leaf's state, in order, one at a time."""
        for part in self.parts():
            yield part, self.state(part)

    def close(self) -> None:
        self.layout.clear()
        self._state.clear()


class DiskStore(MemoryStore):
    """Leaves' matrices and states in files under ``root``; layouts in memory.

    A leaf's state is a row of column blocks, each some columns of a ``.npy`` file. A step
    that keeps some of its input's columns (:class:`~distne.engine.program.Kept`) refers to
    them where they lie, and only its new columns are written: a ProNE Chebyshev term writes
    3 blocks of ``dim`` columns instead of 7 (at 100M edges, 10M nodes and dim 128, a block
    is ~5 GB over all tasks). Files are never written in place (a snapshot may hold a link to
    one); a file no block refers to is removed.

    ``root`` is a fresh folder under the executor's first local dir; :meth:`close` removes it.
    """

    def __init__(self, root: str | None = None) -> None:
        super().__init__()
        self.root = root or tempfile.mkdtemp(prefix="distne-leaves-", dir=spark_local_dir())
        self.spill_dir = self.root
        # Each leaf's state, left to right: (file, first column in the file, columns).
        self._blocks: dict[int, list[tuple[str, int, int]]] = {}
        self._files = itertools.count()

    def _path(self, part: int, what: str) -> str:
        return os.path.join(self.root, f"{part}.{what}")

    def add(self, part: int, block: LeafBlock) -> None:
        self.set_block(part, block)
        self._blocks[part] = []

    def set_block(self, part: int, block: LeafBlock) -> None:
        # Pickled together, matrices that share index arrays (the derived ones share w's)
        # store them once.
        with open(self._path(part, "matrices"), "wb") as f:
            pickle.dump(block.matrices, f, protocol=pickle.HIGHEST_PROTOCOL)
        self.layout[part] = replace(block, matrices={})

    def block(self, part: int) -> LeafBlock:
        with open(self._path(part, "matrices"), "rb") as f:
            return replace(self.layout[part], matrices=pickle.load(f))

    def _spans(self, part: int, start: int, width: int) -> list[tuple[str, int, int]]:
        """The file columns that hold a leaf's state columns ``[start, start + width)``."""
        out, at = [], 0
        for path, first, n in self._blocks[part]:
            lo, hi = max(start, at), min(start + width, at + n)
            if lo < hi:
                out.append((path, first + lo - at, hi - lo))
            at += n
        return out

    def _read(self, part: int, idx: np.ndarray | None, start: int, width: int) -> np.ndarray:
        rows = len(self.layout[part].own) if idx is None else len(idx)
        out = np.empty((rows, width), DTYPE)
        at = 0
        for path, first, n in self._spans(part, start, width):
            # Memory-mapped: only the pages holding these rows are read, and unmapped after.
            x = np.load(path, mmap_mode="r")
            cols = slice(first, first + n)
            out[:, at : at + n] = x[:, cols] if idx is None else x[idx, cols]
            at += n
        return out

    def state(self, part: int) -> np.ndarray:
        return self._read(part, None, 0, sum(n for _, _, n in self._blocks[part]))

    def rows(self, part: int, idx: np.ndarray, start: int, width: int) -> np.ndarray:
        return self._read(part, idx, start, width)

    def set_state(self, part: int, x: Columns) -> None:
        blocks: list[tuple[str, int, int]] = []
        for c in x if isinstance(x, list) else [x]:
            if isinstance(c, Kept):
                blocks += self._spans(part, c.start, c.width)
            elif c.shape[1]:
                path = os.path.join(self.root, f"{part}.{next(self._files)}.npy")
                with open(path, "wb") as f:
                    np.save(f, np.ascontiguousarray(c, dtype=DTYPE))
                blocks.append((path, 0, c.shape[1]))
        gone = {p for p, _, _ in self._blocks.get(part, [])} - {p for p, _, _ in blocks}
        self._blocks[part] = blocks
        for path in gone:
            os.remove(path)

    def _whole_file(self, part: int) -> bool:
        """Whether a leaf's state is one whole file (or has no columns)."""
        blocks = self._blocks[part]
        if not blocks:
            return True
        path, first, n = blocks[0]
        return len(blocks) == 1 and first == 0 and np.load(path, mmap_mode="r").shape[1] == n

    def save_state(self, part: int, path: str) -> None:
        """A snapshot's copy of a leaf's state: a hard link to the store's file where
        ``path`` is on the same file system (no bytes written; the file stays the snapshot's
        when the state moves on, since :meth:`set_state` never writes into a file), a copy
        elsewhere. A state in several blocks is first written as one file, which the store
        keeps using.

        At 100M edges a copy of the state was ~15 GB written at every snapshot, and the
        disk held two of them while the newer one was written.
        """
        if not self._whole_file(part):
            self.set_state(part, self.state(part))
        with contextlib.suppress(FileNotFoundError):
            os.remove(path)  # what an interrupted snapshot left: never written into
        if not self._blocks[part]:  # no columns
            super().save_state(part, path)
            return
        ((source, _, _),) = self._blocks[part]
        try:
            os.link(source, path)
        except OSError:
            shutil.copyfile(source, path)

    def close(self) -> None:
        super().close()
        shutil.rmtree(self.root, ignore_errors=True)
