"""spark-submit entry point: evaluate an embeddings table (arguments of ``distne evaluate``)."""

import sys

from distne.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]], default_master=None))
