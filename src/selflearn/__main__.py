"""``python -m selflearn``: the same command as the ``selflearn`` script."""

import sys

from selflearn.cli.main import main

sys.exit(main())
