"""Choose T and eps for one model by the paper's protocol (code in tuning.py).

The command's code is oodbench.commands.tune (code/oodbench/commands/tune.py);
``python tune.py --help`` explains it.
"""
import sys

from oodbench.commands.tune import main

if __name__ == "__main__":
    sys.exit(main())
