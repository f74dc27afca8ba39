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


def _leaves(g, leaves: int):
    """Each node's leaf (its id mod ``leaves``) and every leaf's block of the weights."""
    from distne.engine.program import build_block

    edges = np.array(g.edges)
    src = np.concatenate([edges[:, 0], edges[:, 1]])
    dst = np.concatenate([edges[:, 1], edges[:, 0]])
    part = np.arange(g.number_of_nodes()) % leaves
    blocks = {}
    for p in range(leaves):
        mine = part[src] == p
        own = np.flatnonzero(part == p)
        blocks[p] = build_block(p, own, src[mine], dst[mine], part[dst[mine]], np.ones(mine.sum()))
    return part, src, dst, blocks


def test_barrier_tasks_send_each_border_row_once_per_task_spilled_or_not(tmp_path, monkeypatch):
    """Two tasks (threads) run ProNE over 5 leaves with the halo in memory and in files: the
    same bits, close to ProNE on the whole graph, no message file left, and each product
    sends a task each row it needs once, however many of its leaves border that row's node."""
    import networkx as nx
    import scipy.sparse as sp
    from distne.config import EmbeddingConfig
    from distne.embedders.prone import Prone
    from distne.engine.exchange import _MeshBackend
    from distne.engine.local import run_program
    from distne.engine.program import prepared
    from distne.engine.store import DiskStore, MemoryStore

    g = nx.powerlaw_cluster_graph(300, 4, 0.2, seed=1)
    leaves, tasks = 5, 2
    part, src, dst, blocks = _leaves(g, leaves)
    cut = part[src] != part[dst]
    program = Prone(EmbeddingConfig(dim=8), 42)

    def run(spill: bool):
        dirs = [tmp_path / f"{spill}-{r}" for r in range(tasks)]
        for d in dirs:
            d.mkdir()
        sent: list[int] = []

        def body(mesh: Mesh):
            store = DiskStore(str(dirs[mesh.rank])) if spill else MemoryStore()
            for p in range(mesh.rank, leaves, tasks):
                store.add(p, blocks[p])
            backend = prepared(program, _MeshBackend(mesh, store, tasks, lambda done: None))
            real_send = mesh.send

            def send(target, kind, source, dest, payload):
                if kind == HALO and mesh.rank == 0 and backend.products_done == 1:
                    sent.append(len(payload))  # task 0's rows in the second product's halo
                real_send(target, kind, source, dest, payload)

            mesh.send = send
            program.run(backend)
            mesh.barrier()
            out = {p: x[:, : program.dim].copy() for p, x in store.states()}
            left = [f.name for f in dirs[mesh.rank].iterdir() if f.name.startswith("msg-")]
            store.close()
            return out, left

        if spill:
            monkeypatch.setattr(mesh_module, "SPILL_BYTES", 100)
        results, errors = _run(tasks, body, spill_dirs=dirs if spill else None)
        assert not errors, errors
        x = np.zeros((g.number_of_nodes(), program.dim), np.float32)
        for out, left in results:
            assert left == []
            for p, rows in out.items():
                x[blocks[p].own] = rows
        return x, sum(sent)

    in_memory, sent_rows = run(False)
    spilled, _ = run(True)
    np.testing.assert_array_equal(in_memory, spilled)
    adj = sp.csr_matrix(nx.to_scipy_sparse_array(g, nodelist=range(g.number_of_nodes())))
    from prone_reference import local_block

    whole = run_program(program, local_block(adj))
    np.testing.assert_allclose(in_memory, whole, atol=1e-4)
    # Oracle: over the cut edges s-d with d in one of task 0's leaves, the distinct pairs of
    # (the task of s's leaf, d); fewer than the pairs of (s's leaf, d) this graph has.
    ends = [
        (int(part[s]), int(d))
        for s, d in zip(src[cut], dst[cut], strict=True)
        if part[d] % tasks == 0
    ]
    assert sent_rows == len({(p % tasks, d) for p, d in ends}) < len(set(ends))
