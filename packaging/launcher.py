"""PyInstaller entry point of the one-folder bundle: runs ``mbrs-gui``."""
import sys

from mbrs_gui.app import main

if __name__ == "__main__":
    sys.exit(main())
