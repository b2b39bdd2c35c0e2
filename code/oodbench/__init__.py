"""oodbench: ODIN reproduced score for score, and a bench of out-of-distribution detectors
for image classifiers.

The subpackages are the layers the data flows through, lowest first (``api``, the notebook
entry, is one module beside ``commands``). A module imports only
from its own layer or below (tests/test_layers.py asserts it from ``LAYERS``):

====  ============  ==========================================================================
layer subpackage    what it holds
====  ============  ==========================================================================
0     core          paths and the user-facing error, file and array digests, device choice,
                    process-wide speed settings, torchrun shards, whole-or-nothing writes,
                    the run folder's score files
1     assets        what is installed where, from which mirror or URL, with which checksum;
                    atomic installs; the Tiny-ImageNet and grey sets rebuilt at setup
2     networks      the registry of named pre-trained models and the architectures
                    (DenseNet-BC, Wide ResNet, CIFAR ResNets, the FSSD LeNet)
2     datasets      the image sets, read from installed files only (CIFAR, the OOD sets,
                    noise; the 28x28 grey sets of the FSSD suite)
3     scoring       ODIN's temperature scaling and input perturbation, the shared feature pass,
                    the score and feature cache, the OOD metrics of two score arrays
3     detectors     one module per detector behind one interface (``detectors/base.py``)
3     losses        training losses: LA-OOD's One-Class SVM term of co-training
4     pipelines     runs (plan, score, write a run folder), tuning grids, the feature,
                    layer-wise and LA-OOD runs, the FSSD suite's protocol
5     reports       the release's metric block, tables of the FSSD suite and LA-OOD, figures
6     commands      argument parsing and printing: one module per entry point and the shared
                    flags (``cli``); ``code/<name>.py`` is a thin ``main()`` over each
6     api           the Python entry for notebooks (one module): a model from files,
                    images, any detector's scores, the metrics; writes no file
====  ============  ==========================================================================

The entry points users know stay at ``code/`` (``main.py``, ``calData.py``, ``calMetric.py``,
``table.py``, ``tune.py``, ``compare.py``, ...). Importing this package imports nothing else.
"""
__version__ = "0.1.0"

LAYERS = {"core": 0, "assets": 1, "networks": 2, "datasets": 2, "scoring": 3, "detectors": 3,
          "losses": 3, "pipelines": 4, "reports": 5, "commands": 6, "api": 6}
