"""Layer 3, scoring: ODIN's arithmetic (``odin_scoring``), the shared feature pass
(``features``), the cache of scores and features (``cache``) and the metrics (``metrics``)."""
