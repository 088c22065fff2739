"""Entry point of the PyInstaller bundle: the same CLI (bare `ctxscope` opens the app)."""

import multiprocessing
import sys

from ctxscope.cli import main

if __name__ == "__main__":
    multiprocessing.freeze_support()  # torch may spawn helpers; a frozen app must not re-run main
    sys.exit(main())
