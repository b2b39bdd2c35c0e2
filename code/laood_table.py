"""LA-OOD on one model against every OOD set here: results/laood_<model>.md and .csv (both.

The command's code is oodbench.commands.laood_table (code/oodbench/commands/laood_table.py);
``python laood_table.py --help`` explains it.
"""
import sys

from oodbench.commands.laood_table import main

if __name__ == "__main__":
    sys.exit(main())
