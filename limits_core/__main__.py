"""``python -m limits_core``: the same as the ``limits-core`` command."""

import sys

from limits_core.cli import main

sys.exit(main())
