"""`python -m numddpg ...`: the `numddpg` command."""
import sys

from .tools.cli import main

sys.exit(main())
