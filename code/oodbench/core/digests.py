"""Content digests of files and arrays: checksums of assets and parts of cache keys (layer 0)."""
import gzip
import hashlib

import numpy as np


def file_digest(path, algo="sha256", gunzipped=False):
    """Hex digest of a file's bytes (of its gunzipped content when ``gunzipped``)."""
    h = hashlib.new(algo)
    opener = gzip.open if gunzipped else open
    with opener(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def array_digest(*arrays):
    """sha256 of arrays' dtypes, shapes and bytes, in order."""
    h = hashlib.sha256()
    for array in arrays:
        array = np.ascontiguousarray(array)
        h.update(str((array.dtype.str, array.shape)).encode())
        h.update(array.tobytes())
    return h.hexdigest()
