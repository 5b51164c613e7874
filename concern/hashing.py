"""Content hashes of files (checksums of shipped weights, cache keys, the model of a result folder). No torch."""

from __future__ import annotations

import hashlib

__all__ = ['file_sha256']


def file_sha256(path: str) -> str:
    """The SHA-256 of a file's bytes (hex), read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, 'rb') as handle:
        for block in iter(lambda: handle.read(1 << 20), b''):
            digest.update(block)
    return digest.hexdigest()
