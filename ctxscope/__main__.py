"""``python -m ctxscope`` runs the same entry point as the ``ctxscope`` command."""

import sys

from ctxscope.cli import main

if __name__ == "__main__":
    sys.exit(main())
