"""`stockade`: the box's commands, the worker's and the service's in one command line."""

from __future__ import annotations

import sys
from collections.abc import Sequence

from sandbox.cli import doctor as box_doctor
from sandbox.cli.main import BOX_COMMANDS, Commands
from sandbox.cli.main import main as box_main
from service import doctor
from service.commands import add_service_parsers, run_service
from worker.cli import WORKER_COMMANDS

# The box's doctor gains the service's Redis check; every other box command is as it is.
COMMANDS = (
    *(c for c in BOX_COMMANDS if c.run is not box_doctor.run_doctor),
    Commands(box_doctor.add_doctor_parser, doctor.run_doctor),
    *WORKER_COMMANDS,
    Commands(add_service_parsers, run_service),
)


def main(argv: Sequence[str] | None = None) -> int:
    return box_main(argv, COMMANDS)


if __name__ == "__main__":
    sys.exit(main())
