"""Layer 4, pipelines: a run and its folder (``runs``), tuning grids (``tuning``), the runs of
the gradient-free, layer-wise and LA-OOD detectors, and the FSSD suite's protocol
(``fssd_protocol``)."""
