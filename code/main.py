"""ODIN: out-of-distribution detection by temperature scaling and input perturbation.

The command's code is oodbench.commands.main (code/oodbench/commands/main.py);
``python main.py --help`` explains it.
"""
import sys

from oodbench.commands.main import main

if __name__ == "__main__":
    sys.exit(main())
