"""The barrier transport's task-to-task messages (distne.engine.mesh), with threads as tasks."""

import socket
import threading

import numpy as np
from distne.engine import mesh as mesh_module
from distne.engine.mesh import HALO, Mesh, PeerLost


class _Share:
    """What BarrierTaskContext.allGather does for the mesh: every rank's address, by rank."""

    def __init__(self, size: int):
        self.got: list[str | None] = [None] * size
        self.barrier = threading.Barrier(size)

    def __call__(self, rank: int, address: str) -> list[str]:
        self.got[rank] = address
        self.barrier.wait()
        return list(self.got)


def _run(size: int, body, token: bytes = b"t" * 32, spill_dirs=None):
    share = _Share(size)
    results: list[object] = [None] * size
    errors: list[BaseException] = []

    def task(rank: int) -> None:
        spill = str(spill_dirs[rank]) if spill_dirs else None
        mesh = Mesh(rank, lambda a: share(rank, a), "127.0.0.1", token, spill)
        try:
            results[rank] = body(mesh)
        except BaseException as e:  # noqa: BLE001 - reported to the test below
            errors.append(e)
            mesh.close(goodbye=False)  # as the barrier task does when it fails
        else:
            mesh.close()

    threads = [threading.Thread(target=task, args=(r,)) for r in range(size)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return results, errors


def test_every_task_gets_what_each_other_task_sent_it():
    def body(mesh: Mesh):
        mesh.next_round()
        for target in range(mesh.size):
            rows = np.full((3, 2), 10 * mesh.rank + target, dtype=np.float32)
            mesh.send(target, HALO, mesh.rank, target, rows)
        got = {
            src: np.frombuffer(mesh.receive(HALO, src, mesh.rank), np.float32).reshape(3, 2)
            for src in range(mesh.size)
        }
        mesh.barrier()
        return got

    results, errors = _run(3, body)
    assert not errors
    for rank, got in enumerate(results):
        for src, rows in got.items():
            assert (rows == 10 * src + rank).all()


def test_large_messages_wait_in_files_when_spilling(tmp_path, monkeypatch):
    monkeypatch.setattr(mesh_module, "SPILL_BYTES", 100)
    dirs = [tmp_path / str(r) for r in range(3)]
    for d in dirs:
        d.mkdir()

    def body(mesh: Mesh):
        mesh.next_round()
        for target in range(mesh.size):  # 4 KB (spilled), then 24 bytes (kept in memory)
            mesh.send(target, HALO, mesh.rank, -1 - target, np.full(512, target, np.float64))
            mesh.send(target, HALO, mesh.rank, target, np.full(3, mesh.rank, np.float64))
        # A peer's messages arrive in order: once its small one is here, its big one is too.
        small = {s: np.frombuffer(mesh.receive(HALO, s, mesh.rank), np.float64) for s in range(3)}
        waiting = len(list(dirs[mesh.rank].iterdir()))
        big = {
            s: np.frombuffer(mesh.receive(HALO, s, -1 - mesh.rank), np.float64) for s in range(3)
        }
        left = len(list(dirs[mesh.rank].iterdir()))
        mesh.barrier()
        return small, big, waiting, left

    results, errors = _run(3, body, spill_dirs=dirs)
    assert not errors
    for rank, (small, big, waiting, left) in enumerate(results):
        assert waiting == 3  # one file per sender, itself included
        assert left == 0  # read back and removed
        for src in range(3):
            assert small[src].tolist() == [float(src)] * 3
            assert big[src].tolist() == [float(rank)] * 512


def test_collectives_agree_on_every_task():
    rng = np.random.default_rng(0)
    partials = [rng.standard_normal((4, 4)) for _ in range(4)]

    def body(mesh: Mesh):
        total = mesh.allreduce(partials[mesh.rank])
        gathered = mesh.allgather({"rank": mesh.rank})
        # A large message (about 8 MB) crosses the sockets in pieces.
        big = mesh.allreduce(np.full(1 << 20, float(mesh.rank)))
        mesh.barrier()
        return total, gathered, big

    results, errors = _run(4, body)
    assert not errors
    want = partials[0] + partials[1] + partials[2] + partials[3]
    for total, gathered, big in results:
        np.testing.assert_allclose(total, want, rtol=1e-12)
        assert (total == results[0][0]).all()  # the same bits everywhere: one order of addition
        assert gathered == [{"rank": r} for r in range(4)]
        assert (big == 6.0).all()


def test_a_failed_peer_fails_the_waiting_task_instead_of_hanging():
    def body(mesh: Mesh):
        if mesh.rank == 1:
            raise RuntimeError("crashed")  # before sending what rank 0 waits for
        mesh.next_round()
        mesh.receive(HALO, 1, 0)

    results, errors = _run(2, body)
    assert len(errors) == 2
    assert {type(e) for e in errors} == {PeerLost, RuntimeError}


def test_a_connection_without_the_token_is_dropped_and_harms_nothing():
    def body(mesh: Mesh):
        if mesh.rank == 0:
            host, port = mesh.addresses[0].rsplit(":", 1)
            with socket.create_connection((host, int(port))) as intruder:
                intruder.sendall(b"not the token" + bytes(200))
        mesh.barrier()
        mesh.next_round()
        if mesh.rank == 1:
            mesh.send(0, HALO, 1, 0, b"real")
            return None
        return bytes(mesh.receive(HALO, 1, 0))

    results, errors = _run(2, body)
    assert not errors
    assert results[0] == b"real"
