"""``python -m pladis``: the same as the ``pladis`` command."""

import sys

from pladis.cli import main

sys.exit(main())
