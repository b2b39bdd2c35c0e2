"""The release's metric block from a run folder's score files (layer 6: the calMetric.py command).

The command's code is oodbench.commands.calmetric (code/oodbench/commands/calmetric.py);
``python calMetric.py --help`` explains it.
"""
import sys

from oodbench.commands.calmetric import main

if __name__ == "__main__":
    sys.exit(main())
