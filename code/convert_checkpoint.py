"""Convert a full pickled checkpoint you trust into a plain state_dict.

The command's code is oodbench.commands.convert_checkpoint
(code/oodbench/commands/convert_checkpoint.py); ``python convert_checkpoint.py --help`` explains it.
"""
import sys

from oodbench.commands.convert_checkpoint import main

if __name__ == "__main__":
    sys.exit(main())
