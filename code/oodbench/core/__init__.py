"""Layer 0, core: paths and the user-facing error, digests, devices, runtime settings, torchrun
shards and the run folder's score files."""
