"""``python -m selflearn``: the same command as the ``selflearn`` script."""

import sys

from selflearn.cli import main

sys.exit(main())
