"""Layer 2, networks: the registry of named pre-trained models (``registry``) and the
architectures it builds."""
