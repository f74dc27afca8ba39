"""The engine: embedder programs (:mod:`.program`) and the two backends that run them.

- :mod:`.local`: the whole graph (or one subgraph) in one Python worker, numpy/scipy;
- :mod:`.exchange`: the graph's rows spread over leaf subgraphs as co-partitioned RDDs, border
  rows exchanged per product (the halo); transport only, no algorithm.

A program gives the same vectors on both (tests check it to 1e-4).
"""
