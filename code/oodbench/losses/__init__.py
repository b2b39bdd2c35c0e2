"""Training losses (layer 3): LA-OOD's One-Class SVM term of co-training."""
