"""Embedders: programs for the engine (:mod:`distne.engine.program`), chosen from a registry.

An embedder is written once, as a program of sparse products, small reductions and row-wise
steps; the local backend runs it on one Python worker, the exchange backend across leaf
subgraphs, and both give the same vectors. A new embedder is one new module and one line here.
"""

from __future__ import annotations

from distne.config import EmbedderKind, EmbeddingConfig
from distne.embedders.fastrp import FastRP
from distne.embedders.prone import Prone
from distne.engine.program import Program

_REGISTRY: dict[EmbedderKind, type] = {EmbedderKind.PRONE: Prone, EmbedderKind.FASTRP: FastRP}


def make_program(cfg: EmbeddingConfig, seed: int) -> Program:
    """The program ``embedding.method`` names, with its settings and seed."""
    program: Program = _REGISTRY[cfg.method](cfg, seed)
    return program
