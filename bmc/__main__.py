"""`python -m bmc`: the command line (what `bmc train --workers K` starts under mpirun)."""

import sys

from bmc.cli import main

sys.exit(main())
