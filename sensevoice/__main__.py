"""``python -m sensevoice``: the same as the ``sensevoice`` console script."""

import sys

from sensevoice.cli import main

sys.exit(main())
