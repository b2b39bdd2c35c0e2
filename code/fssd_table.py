"""Reproduce the FSSD repository's benchmark: Fashion-MNIST (in) vs MNIST, LeNet, with Baseline,.

The command's code is oodbench.commands.fssd_table (code/oodbench/commands/fssd_table.py);
``python fssd_table.py --help`` explains it.
"""
import sys

from oodbench.commands.fssd_table import main

if __name__ == "__main__":
    sys.exit(main())
