"""Evaluation: held-out edge splits and the quality metrics of an embeddings table.

:mod:`~distne.evaluation.split` holds out edges (never a node's last) and samples non-edges;
:mod:`~distne.evaluation.metrics` scores a table by link prediction (AUC, all pairs and the
pairs that cross subgraphs) and node classification (Micro/Macro-F1), with the protocol of
``shared/DESIGN.md`` so that figures compare.
"""

from distne.evaluation.metrics import link_prediction, node_classification, read_embeddings
from distne.evaluation.split import Split, split_edges

__all__ = ["Split", "link_prediction", "node_classification", "read_embeddings", "split_edges"]
