"""`python -m tokenpulse`: the same command as the `tokenpulse` script."""

import sys

from tokenpulse.cli import main

sys.exit(main())
