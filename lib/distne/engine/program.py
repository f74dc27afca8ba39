"""The engine's vocabulary: what an embedder program may ask of a backend.

An embedder is written once, as a *program* over an ``n x width`` float32 state (one row per
node) using five kinds of step, all of which split over a node partition exactly:

- a *sparse product* (:class:`Product`): ``Z = M V`` with ``M`` one of the graph's matrices
  (the weights ``w``, or one the program derived from them, below), and ``V`` a column block
  of the state (optionally times a small matrix) or the id-drawn random basis
  (:func:`id_gaussian`); a row-wise ``step`` turns ``(state, Z, degree)`` into the new state.
  Row ``r`` of ``Z`` needs ``V`` at ``r``'s neighbours only;
- a *reduction* to a small matrix: the Gram matrix of a column block (:meth:`Backend.gram`),
  or the sign of each column's largest entry (:meth:`Backend.column_signs`), in float64;
- a *row-wise map* with small matrices, optionally reading each row's weighted degree
  (:meth:`Backend.map_rows`);
- an *edge map* (:meth:`Backend.edge_map`): new matrices with the pattern of ``w``, each
  entry a function of its weight and of state columns at its two end nodes (the column end's
  rows travel as a product's do);
- the *id-drawn basis*: row ``i`` depends on ``(seed, id_i)`` alone, so pieces of one product
  computed on different machines agree.

A backend starts from the weights alone (its blocks hold ``w``); a program's
:meth:`Program.prepare` derives the other matrices it multiplies by (ProNE's ``F``, FastRP's
``W D^beta``) with the same steps, where the rows are, before :meth:`Program.run`.

Two backends run programs: :mod:`distne.engine.local` (the whole graph, or one subgraph, in
one Python worker) and :mod:`distne.engine.exchange` (the rows spread over leaf subgraphs,
exchanging border rows). Both call the per-leaf functions of this module, so a program gives
the same vectors on either (tests check it).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import scipy.sparse as sp

# The state, the halo and the sparse matrices are float32 (half the memory and shuffle of
# float64); reductions and the small matrices derived from them are float64.
DTYPE = np.float32


@dataclass(frozen=True)
class Kept:
    """In a step's result: the columns ``[start, start + width)`` of its input state,
    unchanged. A store that keeps states on disk refers to them where they already lie
    instead of writing them again (:class:`~distne.engine.store.DiskStore`)."""

    start: int
    width: int


# A step's new state: one array, or its column blocks left to right, each an array or Kept.
Columns = np.ndarray | list[np.ndarray | Kept]
Step = Callable[[np.ndarray, np.ndarray, np.ndarray], Columns]
# ``fn(w, at_r, at_c) -> {name: values}``: see :meth:`Backend.edge_map`.
EdgeFn = Callable[[np.ndarray, np.ndarray, np.ndarray], dict[str, np.ndarray]]


@dataclass(frozen=True)
class Product:
    """One sparse product: the new state is ``step(state, M V, degree)``.

    Attributes:
        value: which per-edge value is ``M`` (a name in the program's ``values``).
        block: ``(start, width)`` of the state columns that ``V`` is, or None for the id-drawn
            Gaussian basis of width ``omega`` (drawn with ``seed``).
        step: ``step(state, mv, degree) -> new state``, row-wise; the new state may be given
            as column blocks (:data:`Columns`), naming the input's columns it keeps.
        pre: a small matrix applied to the block before the product (an orthonormalisation).
    """

    value: str
    block: tuple[int, int] | None
    step: Step
    pre: np.ndarray | None = None
    omega: int = 0
    seed: int = 0


class Backend(Protocol):
    """Where a program's state lives; see the module docstring for what each call means."""

    n: int
    products_done: int

    def product(self, op: Product, gram: tuple[int, int] | None = None) -> np.ndarray | None:
        """Apply ``op``; return the Gram matrix of the new state's columns ``gram`` if asked."""
        ...

    def gram(self, start: int, width: int, pre: np.ndarray | None = None) -> np.ndarray: ...

    def column_signs(self, start: int, width: int, pre: np.ndarray) -> np.ndarray: ...

    def map_rows(self, fn: Callable[..., np.ndarray], degree: bool = False) -> None:
        """The state becomes ``fn(state)``, or ``fn(state, degree)`` with ``degree`` (each
        row's weighted degree, float64), row-wise."""
        ...

    def edge_map(self, block: tuple[int, int], fn: EdgeFn) -> None:
        """New matrices with the pattern of ``w`` (added to the blocks; the state unchanged).

        ``fn(w, at_r, at_c)`` gets, for every stored entry ``(r, c)``, its weight and the
        state's columns ``block`` at ``r`` and at ``c`` (one row per entry), and returns
        ``{name: values}`` in the same order.
        """
        ...


class Program(Protocol):
    """An embedder written once. ``run`` leaves the vectors in state columns ``[0, dim)``."""

    values: tuple[str, ...]  # the matrices its products use: ``w`` and those ``prepare`` derives
    dim: int

    def prepare(self, backend: Backend) -> None:
        """Derive the matrices of ``values`` other than ``w`` from the weights (on an empty
        state, which it leaves empty). Run before :meth:`run` on every run, a resumed one
        too: snapshots hold the state, not the matrices (:func:`prepared`)."""
        ...

    def products(self) -> int:
        """How many sparse products :meth:`run` makes (for progress reports)."""
        ...

    def state_width(self) -> int:
        """The widest state :meth:`run` keeps, in columns (for memory estimates)."""
        ...

    def run(self, backend: Backend) -> None: ...


def prepared(program: Program, backend: Backend) -> Backend:
    """``backend`` after ``program.prepare``: its products are not the program's (progress
    and snapshots count :meth:`Program.run`'s alone)."""
    program.prepare(backend)
    backend.products_done = 0
    return backend


@dataclass
class LeafBlock:
    """One leaf's rows of every sparse matrix, built once and kept where the leaf lives.

    ``own`` are the leaf's node ids (sorted), ``halo`` the ids of its neighbours in other
    leaves (sorted) and ``halo_part`` their leaves. ``matrices[value]`` is the leaf's
    ``len(own) x (len(own) + len(halo))`` CSR block of that value (columns: own, then halo):
    ``w`` as built, the others derived by the program (:meth:`Program.prepare`), sharing
    ``w``'s index arrays; ``degree`` the weighted degree of each own row.
    """

    own: np.ndarray
    halo: np.ndarray
    halo_part: np.ndarray
    degree: np.ndarray
    matrices: dict[str, sp.csr_matrix] = field(default_factory=dict)

    @property
    def columns(self) -> np.ndarray:
        return np.concatenate([self.own, self.halo])


def index_of(keys: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """The position in ``keys`` (distinct ids) of each of ``ids`` (each one of ``keys``).

    Compact keys (a whole graph's dense ids, as the local backend has) are looked up in a
    table over their span; others (a leaf's ids, spread over the graph's) are searched, at
    ~0.18 s per 1.7M ids for 100k keys.
    """
    lo, hi = (int(keys.min()), int(keys.max())) if len(keys) else (0, -1)
    if hi - lo < 4 * len(keys) + 1024:
        table = np.empty(hi - lo + 1, dtype=np.int64)
        table[keys - lo] = np.arange(len(keys))
        return table[ids - lo]
    order = np.argsort(keys, kind="stable")
    return order[np.searchsorted(keys[order], ids)]


def build_block(
    part: int,
    own: np.ndarray,
    r_ids: np.ndarray,
    c_ids: np.ndarray,
    c_part: np.ndarray | None,
    weight: np.ndarray,
) -> LeafBlock:
    """A :class:`LeafBlock` (its matrix ``w``) from a leaf's nodes and its out-edges
    ``r_ids -> c_ids`` of weight ``weight``.

    ``c_part`` is the leaf of each edge's column node (None: every column is inside).
    """
    own = np.sort(np.asarray(own, dtype=np.int64))
    if c_part is None:
        outside = np.zeros(len(c_ids), dtype=bool)
        c_part = np.full(len(c_ids), part, dtype=np.int64)
    else:
        outside = c_part != part
    halo, first = np.unique(c_ids[outside], return_index=True)
    halo_part = c_part[outside][first]
    cols = np.concatenate([own, halo])
    c = index_of(cols, c_ids)
    r = index_of(own, r_ids)
    shape = (len(own), len(cols))
    w = sp.csr_matrix((np.asarray(weight, DTYPE), (r, c)), shape=shape)
    degree = np.bincount(r, weights=weight, minlength=len(own)).astype(np.float64)
    return LeafBlock(own=own, halo=halo, halo_part=halo_part, degree=degree, matrices={"w": w})


_GOLDEN = np.uint64(0x9E3779B97F4A7C15)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    """The splitmix64 finaliser, element-wise on uint64 (wrapping arithmetic)."""
    x = x + _GOLDEN
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


# Rows drawn at a time: the draw needs five n x cols arrays of 8 bytes; in pieces, only the
# output grows with n (a leaf of 1.3M rows with its halo took 7 GB in one piece at 30M edges).
# Pieces of 32,768 rows still raised a 1M-edge barrier task from ~250 to ~500 MB at the first
# product (138 columns); 4,096 keep them near 20 MB, and the loop's cost stays negligible.
DRAW_ROWS = 4096


def id_gaussian(ids: np.ndarray, cols: int, seed: int, dtype: type = np.float64) -> np.ndarray:
    """Row ``i`` is ``cols`` standard normal draws determined by ``(seed, ids[i])`` alone.

    A random basis drawn this way is the same whichever machine computes which rows, so pieces
    of one product computed apart agree. Computed in float64 and stored as ``dtype``.
    """
    out = np.empty((len(ids), cols), dtype)
    with np.errstate(over="ignore"):
        key = _splitmix64(np.array([seed], dtype=np.uint64))
        j = np.arange(cols, dtype=np.uint64) * np.uint64(2)
    for i in range(0, len(ids), DRAW_ROWS):
        with np.errstate(over="ignore"):
            base = _splitmix64(np.asarray(ids[i : i + DRAW_ROWS], np.int64).astype(np.uint64) ^ key)
            h1 = _splitmix64(base[:, None] + j)
            h2 = _splitmix64(base[:, None] + j + np.uint64(1))
        u1 = ((h1 >> np.uint64(11)).astype(np.float64) + 1.0) * 2.0**-53  # (0, 1]
        u2 = (h2 >> np.uint64(11)).astype(np.float64) * 2.0**-53
        out[i : i + DRAW_ROWS] = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    return out


def block_input(leaf: LeafBlock, x: np.ndarray, block: tuple[int, int]) -> np.ndarray:
    """``V`` for a product with the state's columns ``block``, float32: the leaf's own rows,
    then one row per halo node, zero until the caller writes the halo into
    ``V[len(leaf.own):]`` (received straight there, the halo needs no buffer of its own)."""
    start, width = block
    v = np.zeros((len(leaf.own) + len(leaf.halo), width), DTYPE)
    v[: len(leaf.own)] = x[:, start : start + width]
    return v


def stacked(new: Columns, x: np.ndarray) -> np.ndarray:
    """A step's result as one contiguous float32 array (``Kept`` columns taken from ``x``)."""
    if isinstance(new, np.ndarray):
        return np.ascontiguousarray(new, dtype=DTYPE)
    out = np.empty((len(x), sum(_width(c) for c in new)), DTYPE)
    at = 0
    for c in new:
        w = _width(c)
        out[:, at : at + w] = x[:, c.start : c.start + w] if isinstance(c, Kept) else c
        at += w
    return out


def _width(c: np.ndarray | Kept) -> int:
    return c.width if isinstance(c, Kept) else c.shape[1]


def leaf_product(
    op: Product, leaf: LeafBlock, x: np.ndarray, v: np.ndarray | None = None
) -> np.ndarray:
    """One leaf's rows of ``op``, one array: :func:`leaf_step` stacked."""
    return stacked(leaf_step(op, leaf, x, v), x)


def leaf_step(op: Product, leaf: LeafBlock, x: np.ndarray, v: np.ndarray | None = None) -> Columns:
    """One leaf's rows of ``op`` as its step gives them: ``x`` its state rows, ``v`` the
    product's input from :func:`block_input` with the halo written in (None: built here,
    halo rows zero).

    With ``op.pre``, ``M (V pre)`` is computed as ``(M V) pre``: the same product, but the
    dense matrix that grows with the leaf's columns (own rows and halo) stays float32 and is
    never multiplied; only the leaf's own rows are.
    """
    if op.block is None:
        v = id_gaussian(leaf.columns, op.omega, op.seed, DTYPE)
    elif v is None:
        v = block_input(leaf, x, op.block)
    mv = np.asarray(leaf.matrices[op.value] @ v)
    if op.pre is not None:
        mv = (mv @ op.pre).astype(DTYPE)
    return op.step(x, mv, leaf.degree)


def leaf_edge_map(
    block: tuple[int, int], fn: EdgeFn, leaf: LeafBlock, x: np.ndarray, v: np.ndarray | None = None
) -> LeafBlock:
    """One leaf's part of :meth:`Backend.edge_map`: the leaf with the matrices ``fn`` gives
    added (``x`` its state rows, ``v`` as for :func:`leaf_product`)."""
    if v is None:
        v = block_input(leaf, x, block)
    start, width = block
    w = leaf.matrices["w"]
    rows = np.repeat(np.arange(len(leaf.own)), np.diff(w.indptr))
    derived = fn(w.data, x[rows, start : start + width], v[w.indices])
    matrices = dict(leaf.matrices)
    for name, values in derived.items():
        data = np.asarray(values, DTYPE)
        matrices[name] = sp.csr_matrix((data, w.indices, w.indptr), shape=w.shape, copy=False)
    return replace(leaf, matrices=matrices)


def with_degree(fn: Callable[..., np.ndarray], degree: bool, x: np.ndarray, leaf: LeafBlock):
    """``fn(x)``, or ``fn(x, leaf.degree)`` with ``degree``: one leaf's row map, float32."""
    return np.ascontiguousarray(fn(x, leaf.degree) if degree else fn(x), dtype=DTYPE)


def gram_of(block: tuple[int, int], pre: np.ndarray | None, x: np.ndarray) -> np.ndarray:
    """``B^T B`` in float64 for the columns ``block`` of ``x`` (times ``pre`` if given)."""
    b = x[:, block[0] : block[0] + block[1]].astype(np.float64)
    if pre is not None:
        b = b @ pre
    return b.T @ b


def column_tops(start: int, width: int, pre: np.ndarray, x: np.ndarray) -> np.ndarray | None:
    """Each column's largest-magnitude entry of ``x[:, block] @ pre`` (None for no rows)."""
    if not len(x):
        return None
    u = x[:, start : start + width].astype(np.float64) @ pre
    return u[np.argmax(np.abs(u), axis=0), np.arange(u.shape[1])]


def signs_of(tops: Iterable[np.ndarray | None]) -> np.ndarray:
    """Column signs from partial :func:`column_tops`: the sign of the overall largest entry.

    An SVD is defined up to the sign of each singular vector; pinning it this way makes equal
    inputs give equal outputs across machines and BLAS builds.
    """
    stack = np.array([t for t in tops if t is not None])
    winner = stack[np.argmax(np.abs(stack), axis=0), np.arange(stack.shape[1])]
    signs = np.sign(winner)
    signs[signs == 0] = 1.0
    return signs


def inverse_sqrt(g: np.ndarray) -> np.ndarray:
    """``G^{-1/2}`` of a symmetric positive semi-definite matrix, tiny eigenvalues floored."""
    vals, vecs = np.linalg.eigh((g + g.T) / 2)
    floor = max(vals.max(), 1e-300) * 1e-13
    return vecs @ np.diag(1.0 / np.sqrt(np.maximum(vals, floor))) @ vecs.T


def whitening(
    backend: Backend, start: int, width: int, passes: int = 2, gram: np.ndarray | None = None
) -> np.ndarray:
    """A matrix ``T`` such that the block times ``T`` has orthonormal columns.

    One pass (a Gram matrix and its inverse square root) already spans the same subspace,
    which is all a power iteration needs; a second pass restores orthonormality to working
    precision where it matters (before an SVD). ``gram``, if given, is the block's Gram
    matrix, already computed.
    """
    g = backend.gram(start, width) if gram is None else gram
    t = inverse_sqrt(g)
    for _ in range(passes - 1):
        t = t @ inverse_sqrt(backend.gram(start, width, t))
    return t


def top_pairs(g: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """From ``G = B B^T``: the top ``k`` left singular vectors of ``B`` and singular values."""
    vals, vecs = np.linalg.eigh((g + g.T) / 2)
    order = np.argsort(vals)[::-1][:k]
    return vecs[:, order], np.sqrt(np.maximum(vals[order], 0.0))
