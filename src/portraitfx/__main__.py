"""``python -m portraitfx`` (and ``torchrun -m portraitfx``): the ``portraitfx`` command."""

import sys

from portraitfx.cli.main import main

if __name__ == "__main__":
    sys.exit(main())
