"""``python -m benchmarks``: run the scenarios side by side (see ``benchmarks.harness``)."""

import sys

from benchmarks.harness import main

sys.exit(main())
