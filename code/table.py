"""Results tables of one model: every OOD set, baseline and ODIN, as in the paper's Table 2.

The command's code is oodbench.commands.table (code/oodbench/commands/table.py);
``python table.py --help`` explains it.
"""
import sys

from oodbench.commands.table import main

if __name__ == "__main__":
    sys.exit(main())
