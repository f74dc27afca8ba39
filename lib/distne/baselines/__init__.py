"""Baselines kept for comparison: what the seed paper describes, not what distne runs by default.

Every subgraph of every level is embedded apart (:mod:`.per_subgraph`, the local backend on
each subgraph) and the pieces are fused by rotation (:mod:`.procrustes`) or not at all
(``run.mode=leaf_only``). Vectors of different subgraphs then live in different frames; the
issue notes measure what that costs against the exchange backend.
"""
