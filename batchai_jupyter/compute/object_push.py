"""Snapshot objects to a node's object cache through its transport: small ones in packs.

A snapshot of 2,000 small files sent one object at a time costs a handful of SFTP round trips
per file (open, write, close, chmod, rename): seconds on a LAN, minutes across a WAN. Objects
up to PACK_OBJECT_BYTES travel instead as packs of at most PACK_BYTES (node/packs.py: the pack,
then its index, each written atomically, so a pack is seen only once it is whole); bigger ones,
and a handful of small ones, are sent as loose objects. Agents read both (node/tree.py).
"""
from __future__ import annotations

from ..node.packs import INDEX_SUFFIX, PACK_SUFFIX, PACKS, index_digests, pack_index
from ..snapshot import SnapshotStore
from .transport import Transport

PACK_OBJECT_BYTES = 256 << 10   # objects this small go into packs
PACK_BYTES = 64 << 20           # a pack holds at most this much
PACK_AT_LEAST = 16              # fewer small objects than this are sent loose


def node_objects(transport: Transport, objects_dir: str) -> set[str]:
    """The digests a node's cache holds: its loose objects and those its packs' indexes name."""
    held: set[str] = set()
    for rel in transport.list_files(objects_dir):
        if rel.startswith(PACKS + "/"):
            if rel.endswith(INDEX_SUFFIX):
                held |= index_digests(transport.read_bytes(f"{objects_dir}/{rel}")) or set()
        elif rel.count("/") == 1:
            held.add(rel.replace("/", ""))
    return held


def send_objects(transport: Transport, objects_dir: str, digests: list[str], store: SnapshotStore) -> int:
    """Send these objects (the node lacks them); returns how many were sent."""
    small = [d for d in digests if store.object_size(d) <= PACK_OBJECT_BYTES]
    if len(small) < PACK_AT_LEAST:
        small = []
    packed = set(small)
    for digest in digests:
        if digest not in packed:
            transport.put_file(store.object_path(digest), f"{objects_dir}/{digest[:2]}/{digest[2:]}", 0o644)
    batch: dict[str, bytes] = {}
    size = 0
    for digest in small:
        data = store.read_object(digest)
        if batch and size + len(data) > PACK_BYTES:
            _send_pack(transport, objects_dir, batch)
            batch, size = {}, 0
        batch[digest] = data
        size += len(data)
    if batch:
        _send_pack(transport, objects_dir, batch)
    return len(digests)


def _send_pack(transport: Transport, objects_dir: str, objects: dict[str, bytes]) -> None:
    """One pack and then its index (node/packs.py's layout), each written atomically."""
    name, index_text = pack_index(objects)
    folder = f"{objects_dir}/{PACKS}"
    transport.write_bytes(f"{folder}/{name}{PACK_SUFFIX}", b"".join(objects.values()), 0o644)
    transport.write_bytes(f"{folder}/{name}{INDEX_SUFFIX}", index_text.encode(), 0o644)
