"""LA-OOD's co-training: fine-tune a network against its own per-layer One-Class SVMs.

The command's code is oodbench.commands.cotrain (code/oodbench/commands/cotrain.py);
``python cotrain.py --help`` explains it.
"""
import sys

from oodbench.commands.cotrain import main

if __name__ == "__main__":
    sys.exit(main())
