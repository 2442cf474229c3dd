"""`python -m sandbox`: the box's commands alone (run, layers, microvm, doctor)."""

import sys

from sandbox.cli.main import main

sys.exit(main())
