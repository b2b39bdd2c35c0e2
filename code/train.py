"""Train the FSSD benchmark's LeNet on Fashion-MNIST, the authors' recipe (the PyTorch MNIST.

The command's code is oodbench.commands.train (code/oodbench/commands/train.py);
``python train.py --help`` explains it.
"""
import sys

from oodbench.commands.train import main

if __name__ == "__main__":
    sys.exit(main())
