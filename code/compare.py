"""Every detector against every OOD set here, for one model, on exactly the same images,.

The command's code is oodbench.commands.compare (code/oodbench/commands/compare.py);
``python compare.py --help`` explains it.
"""
import sys

from oodbench.commands.compare import main

if __name__ == "__main__":
    sys.exit(main())
