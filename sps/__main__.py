"""``python -m sps``: the ``sps`` command."""

import sys

from .cli import main

sys.exit(main())
