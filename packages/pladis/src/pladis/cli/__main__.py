"""``python -m pladis.cli``: the same as the ``pladis`` command."""

import sys

from . import main

sys.exit(main())
