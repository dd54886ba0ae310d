"""``python -m sensevoice.bench``: the backend speed benchmark (``sensevoice bench``), also its worker processes."""

from sensevoice.bench.speed import main

raise SystemExit(main())
