"""Layer 1, assets: the catalogue of data and weights (``catalog``), installing them from the
mirror or their URLs with checksums (``fetch``), and the sets rebuilt at setup (``rebuild``)."""
