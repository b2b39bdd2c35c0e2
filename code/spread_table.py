"""How much a comparison depends on the network: mean ± std over independent trainings.

The command's code is oodbench.commands.spread_table (code/oodbench/commands/spread_table.py);
``python spread_table.py --help`` explains it.
"""
import sys

from oodbench.commands.spread_table import main

if __name__ == "__main__":
    sys.exit(main())
