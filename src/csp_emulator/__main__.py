"""``python -m csp_emulator serve``: the same command as ``csp-emulator serve``."""

import sys

from csp_emulator.cli import main

sys.exit(main())
