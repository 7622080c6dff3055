"""``python -m indexer`` runs the ``imgsearch`` command line."""

from indexer.entrypoints.cli import main

if __name__ == "__main__":
    main()
