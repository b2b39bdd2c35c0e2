"""Set up data/ and models/: every catalogue item from the mirror or its URL, verified, then the.

The command's code is oodbench.commands.get_data (code/oodbench/commands/get_data.py);
``python get_data.py --help`` explains it.
"""
import sys

from oodbench.commands.get_data import main

if __name__ == "__main__":
    sys.exit(main())
