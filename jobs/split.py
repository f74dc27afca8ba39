"""spark-submit entry point: hold out test edges (same arguments as ``distne split``)."""

import sys

from distne.cli import main

if __name__ == "__main__":
    sys.exit(main(["split", *sys.argv[1:]], default_master=None))
