"""ROC curves and in/out score histograms of run folders (layer 6: the figures.py command).

The command's code is oodbench.commands.figures (code/oodbench/commands/figures.py);
``python figures.py --help`` explains it.
"""
import sys

from oodbench.commands.figures import main

if __name__ == "__main__":
    sys.exit(main())
