"""Layer 5, reports: the release's metric block, the FSSD and LA-OOD tables, and figures."""
