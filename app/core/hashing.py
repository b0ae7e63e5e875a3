"""Canonical JSON, record hashes and the Merkle root over a job's forget records (see docs/CONTRACTS.md)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no spaces, UTF-8 (not ASCII-escaped): equal JSON values give equal bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def merkle_root(record_hashes: Sequence[str]) -> str:
    """RFC 6962 Merkle tree hash whose i-th leaf input is the 32 raw bytes of record i's sha256.

    leaf = sha256(0x00 || record_hash), node = sha256(0x01 || left || right); a list of n > 1 leaves is
    split at the largest power of two below n. The prefixes keep a leaf from passing for a node. An empty
    list has root sha256(""), as in the RFC.
    """
    leaves = [bytes.fromhex(h) for h in record_hashes]
    return _tree_hash(leaves).hex()


def _tree_hash(leaves: Sequence[bytes]) -> bytes:
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(LEAF_PREFIX + leaves[0]).digest()
    split = 1 << ((len(leaves) - 1).bit_length() - 1)
    return hashlib.sha256(NODE_PREFIX + _tree_hash(leaves[:split]) + _tree_hash(leaves[split:])).digest()
