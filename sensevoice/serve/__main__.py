"""``python -m sensevoice.serve --model DIR``: the service without the ``sensevoice`` CLI."""

import sys

from sensevoice.serve.command import main

sys.exit(main())
