"""Layer 2, datasets: the image sets as torch Datasets, read from installed files only
(``image_sets``: CIFAR and the OOD sets; ``greysets``: the FSSD suite's 28x28 sets)."""
