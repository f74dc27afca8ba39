"""The engine: embedder programs (:mod:`.program`) and the two backends that run them.

- :mod:`.local`: the whole graph (or one subgraph) in one Python worker, numpy/scipy;
- :mod:`.exchange`: the graph's rows spread over leaf subgraphs, border rows exchanged per
  product (the halo); transport only, no algorithm. Two transports: a barrier stage whose
  tasks message each other over TCP (:mod:`.mesh`), or co-partitioned RDDs with one shuffle
  per product.

A program gives the same vectors on both (tests check it to 1e-4).
"""
