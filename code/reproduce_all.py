"""Every committed table and figure from nothing, resumable, with a plan and an ETA first.

The command's code is oodbench.commands.reproduce_all (code/oodbench/commands/
reproduce_all.py); ``python reproduce_all.py --help`` explains it. scripts/reproduce_all.sh
sets up the environment and the data, then runs it.
"""
import sys

from oodbench.commands.reproduce_all import main

if __name__ == "__main__":
    sys.exit(main())
