"""`python -m anydepth ...` (also what `torchrun -m anydepth ...` runs)."""

import sys

from anydepth.cli.main import main

sys.exit(main())
