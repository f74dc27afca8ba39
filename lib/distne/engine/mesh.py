"""Direct messages between the tasks of one Spark barrier stage.

The barrier transport of the exchange (:mod:`distne.engine.exchange`) runs a whole program in
one Spark stage whose tasks are started together (barrier execution mode, as distributed
training on Spark does). The tasks then talk to each other over TCP: each opens a listening
socket, the addresses are shared once through ``BarrierTaskContext.allGather``, and every
message afterwards goes straight from one Python worker to another, as raw bytes with a small
header. Nothing passes through the driver or the JVM.

Every message has a key ``(round, kind, source, target)``; all tasks run the same program and
so make the same calls in the same order, and the round counter of each call matches across
tasks. Received messages wait in an inbox until asked for, so sends never wait for the
receiver's program to catch up (a reader thread per connection drains the socket). With a
``spill_dir``, messages over ``SPILL_BYTES`` wait in files there instead of in memory (a
step's halo for all of a task's leaves can be larger than the task's memory).

Connections are authenticated with a token drawn on the driver and shipped with the task (the
sockets bypass ``spark.authenticate``, so this is what keeps other processes out). A peer that
disappears (its process killed, its executor lost) closes its sockets; a task waiting for it
raises at once instead of hanging, and Spark retries the whole barrier stage. A task that
leaves normally says goodbye on each connection first, so its peers can tell the two apart.
"""

from __future__ import annotations

import os
import pickle
import socket
import struct
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

_HEADER = struct.Struct("!qqqqQ")  # round, kind, source, target, payload bytes
HALO, REQUEST, GATHER, SCATTER, BYE = range(5)


class PeerLost(RuntimeError):
    """A peer task's connection closed before the program ended."""


def listen(server: socket.socket, handle: Callable[[socket.socket], None]) -> None:
    """Hand every connection ``server`` accepts to ``handle`` in a thread of its own, until
    ``server`` closes."""

    def loop() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    threading.Thread(target=loop, daemon=True).start()


# Messages larger than this wait in a file when the mesh has a spill_dir.
SPILL_BYTES = 1 << 20


def _copy_to_file(sock: socket.socket, n: int, path: str) -> bool:
    """Stream ``n`` bytes from ``sock`` into a new file ``path``; False if the peer closed."""
    buf = bytearray(min(n, 1 << 22))
    view = memoryview(buf)
    with open(path, "wb") as f:
        while n:
            k = sock.recv_into(view, min(n, len(buf)))
            if k == 0:
                return False
            f.write(view[:k])
            n -= k
    return True


def _read_exact(sock: socket.socket, n: int) -> bytearray | None:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], min(n - got, 1 << 22))
        if k == 0:
            return None
        got += k
    return buf


class Mesh:
    """One task's end of the all-to-all connections of a barrier stage.

    Its methods are called from the task's one thread; only the readers run beside it.

    Args:
        rank: this task's index in the stage (its partition id).
        share: sends this task's ``host:port`` and returns every task's, by rank
            (``BarrierTaskContext.allGather`` in Spark; anything equivalent in tests).
        host: the address peers reach this task at (the executor's host).
        token: a shared secret; connections that do not present it are dropped.
        spill_dir: where large received messages wait (None: in memory).
    """

    def __init__(
        self,
        rank: int,
        share: Callable[[str], list[str]],
        host: str,
        token: bytes,
        spill_dir: str | None = None,
    ):
        self.rank = rank
        self.token = token
        self.round = 0
        self.spill_dir = spill_dir
        self._inbox: dict[tuple[int, int, int, int], bytearray | str] = {}
        self._cond = threading.Condition()
        self._lost: str | None = None
        self._closing = False
        self._out: dict[int, socket.socket] = {}
        self._accepted: list[socket.socket] = []
        self._server = socket.create_server(("", 0), backlog=128)
        port = self._server.getsockname()[1]
        listen(self._server, self._accept)
        self.addresses = share(f"{host}:{port}")
        self.size = len(self.addresses)
        # Connect to every peer now: each task then holds a connection from every other, so
        # a peer that dies is noticed by all (its sockets close) even before it sends.
        for target in range(self.size):
            if target != rank:
                self._out[target] = self._connect(target)

    # -- transport -------------------------------------------------------------------------
    def _accept(self, conn: socket.socket) -> None:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._accepted.append(conn)
        self._read(conn)

    def _read(self, conn: socket.socket) -> None:
        """Drain one peer's connection into the inbox until it says goodbye or is lost."""
        said_bye = False
        try:
            with conn:
                if _read_exact(conn, len(self.token)) != self.token:
                    return  # not one of ours: dropped, and not a lost peer either
                while (head := _read_exact(conn, _HEADER.size)) is not None:
                    *key, n = _HEADER.unpack(head)
                    if key[1] == BYE:
                        said_bye = True
                        break
                    payload: bytearray | str | None
                    if self._spills(n):
                        payload = self._spill_path(tuple(key))
                        if not _copy_to_file(conn, n, payload):
                            break
                    else:
                        payload = _read_exact(conn, n) if n else bytearray()
                        if payload is None:
                            break
                    with self._cond:
                        self._inbox[tuple(key)] = payload
                        self._cond.notify_all()
        except OSError:
            pass
        with self._cond:
            if not said_bye and not self._closing:
                self._lost = "a peer task's connection closed before the program ended"
                self._cond.notify_all()

    def _spills(self, nbytes: int) -> bool:
        return self.spill_dir is not None and nbytes > SPILL_BYTES

    def _spill_path(self, key: tuple[int, ...]) -> str:
        assert self.spill_dir is not None
        return os.path.join(self.spill_dir, "msg-" + "-".join(map(str, key)))

    def _connect(self, target: int) -> socket.socket:
        host, port = self.addresses[target].rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=120)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(self.token)
        return sock

    def send(self, target: int, kind: int, source: int, dest: int, payload: Any) -> None:
        """Send bytes (or a contiguous array's buffer) to task ``target``, under this round."""
        key = (self.round, kind, source, dest)
        data = memoryview(payload).cast("B")
        if target == self.rank:
            kept: bytearray | str
            if self._spills(data.nbytes):
                kept = self._spill_path(key)
                with open(kept, "wb") as f:
                    f.write(data)
            else:
                kept = bytearray(data)
            with self._cond:
                self._inbox[key] = kept
                self._cond.notify_all()
            return
        sock = self._out[target]
        sock.sendall(_HEADER.pack(*key, data.nbytes))
        if data.nbytes:
            sock.sendall(data)

    def take(self, kind: int, source: int, dest: int) -> bytearray | str:
        """The message of this round keyed ``(kind, source, dest)``, waiting until it
        arrives: its bytes, or the path of the file it waits in (spilled), which the caller
        removes."""
        key = (self.round, kind, source, dest)
        with self._cond:
            while key not in self._inbox:
                if self._lost is not None:
                    raise PeerLost(self._lost)
                self._cond.wait(timeout=5.0)
            return self._inbox.pop(key)

    def receive(self, kind: int, source: int, dest: int) -> bytearray:
        """The message of this round keyed ``(kind, source, dest)``; waits until it arrives."""
        got = self.take(kind, source, dest)
        if isinstance(got, str):  # spilled: read it back and drop the file
            with open(got, "rb") as f:
                data = bytearray(os.fstat(f.fileno()).st_size)
                f.readinto(data)
            os.unlink(got)
            return data
        return got

    def next_round(self) -> None:
        self.round += 1

    # -- collectives (rank 0 gathers, combines and sends the result back) ------------------
    def _gather(self, obj: Any) -> list[Any] | None:
        """Rank 0 gets every task's ``obj`` by rank; the others get None."""
        self.next_round()
        if self.rank != 0:
            self.send(0, GATHER, self.rank, 0, pickle.dumps(obj, pickle.HIGHEST_PROTOCOL))
            return None
        return [obj] + [pickle.loads(self.receive(GATHER, r, 0)) for r in range(1, self.size)]

    def _broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every task."""
        if self.rank == 0:
            blob = pickle.dumps(obj, pickle.HIGHEST_PROTOCOL)
            for r in range(1, self.size):
                self.send(r, SCATTER, 0, r, blob)
            return obj
        return pickle.loads(self.receive(SCATTER, 0, self.rank))

    def allgather(self, obj: Any) -> list[Any]:
        """Every task's ``obj``, by rank (for small objects: rank 0 relays them all)."""
        return self._broadcast(self._gather(obj))

    def allreduce(self, x: np.ndarray) -> np.ndarray:
        """The sum over tasks of ``x``, added in rank order (the same on every task)."""
        parts = self._gather(np.asarray(x))
        return self._broadcast(None if parts is None else np.sum(parts, axis=0))

    def barrier(self) -> None:
        """Returns once every task has called it."""
        self.allgather(None)

    def close(self, goodbye: bool = True) -> None:
        """Stop listening and close connections.

        ``goodbye``: this task finished normally (call it once every task is done sending);
        without it, peers still waiting on this task fail at once, as if it crashed.
        """
        with self._cond:
            self._closing = True
        for target, sock in self._out.items() if goodbye else ():
            try:
                sock.sendall(_HEADER.pack(self.round, BYE, self.rank, target, 0))
            except OSError:
                pass
        self._server.close()
        for sock in [*self._out.values(), *self._accepted]:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
