"""LA-OOD's co-training: a network before and after, every detector, every OOD set.

The command's code is oodbench.commands.cotrain_table (code/oodbench/commands/cotrain_table.py);
``python cotrain_table.py --help`` explains it.
"""
import sys

from oodbench.commands.cotrain_table import main

if __name__ == "__main__":
    sys.exit(main())
