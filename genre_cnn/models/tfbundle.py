"""A reader of TensorFlow's tensor-bundle checkpoints (V2: `PREFIX.index` + `PREFIX.data-NNNNN-of-NNNNN`), without TF.

    python -m genre_cnn.models.tfbundle PATH/TO/PREFIX.index     # lists every variable: name, dtype, shape

Written from the format's description, not from TensorFlow's code:
- The `.index` file is a LevelDB-style SSTable: data blocks, a metaindex block, an index block, and a 48-byte footer
  (two block handles as varints, zero padding, magic 0xdb4775248b80fb57). Every block is followed by a 5-byte
  trailer (compression type, masked CRC-32C). A block holds entries `varint shared, varint unshared, varint
  value_length, key suffix, value` (keys prefix-compressed against the previous key), then its restart offsets
  (uint32 each) and their count (uint32). The index block maps a data block's last key to its handle.
- The entry with the empty key is a BundleHeaderProto (num_shards, endianness); every other value is a
  BundleEntryProto (1 dtype, 2 shape, 3 shard_id, 4 offset, 5 size, 6 crc32c, 7 slices), parsed here from the
  protobuf wire format by hand.
- The `.data` shards hold the raw tensors, little-endian, at `offset`, `size` bytes each.

Every length and offset is checked against the file it points into, so a corrupt or truncated file raises
`BundleError` with one line saying what is wrong, instead of a huge allocation or a silently wrong tensor.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import numpy as np

from genre_cnn.errors import GenreCnnError

MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
TRAILER_SIZE = 5  # compression type (1 byte) + masked CRC-32C (4 bytes)
# tensorflow/core/framework/types.proto: the numeric dtypes a checkpoint of weights holds.
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
          10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}


class BundleError(GenreCnnError):
    """A file that is not a readable tensor bundle; the message is one line that says which file and why."""


def _crc32c_table() -> list[int]:
    table = []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC_TABLE: list[int] = []


def masked_crc32c(data: bytes) -> int:
    """CRC-32C (Castagnoli) of `data`, masked the way LevelDB and TensorFlow store it (pure Python: small data only)."""
    if not _CRC_TABLE:
        _CRC_TABLE.extend(_crc32c_table())
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC_TABLE[(crc ^ b) & 0xFF] ^ (crc >> 8)
    crc ^= 0xFFFFFFFF
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(buf: bytes, pos: int, where: str) -> tuple[int, int]:
    """(value, next position) of the base-128 varint at `pos`."""
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise BundleError(f"{where}: truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, pos
        shift += 7
        if shift > 63:
            raise BundleError(f"{where}: varint longer than 10 bytes")


def _proto_fields(buf: bytes, where: str) -> list[tuple[int, int | bytes]]:
    """[(field number, value)] of a protobuf message: ints for varint/fixed fields, bytes for length-delimited."""
    fields: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos, where)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, where)
        elif wire in (1, 5):  # fixed64, fixed32
            width = 8 if wire == 1 else 4
            if pos + width > len(buf):
                raise BundleError(f"{where}: truncated fixed{width * 8} field {number}")
            value = int.from_bytes(buf[pos:pos + width], "little")
            pos += width
        elif wire == 2:
            length, pos = _varint(buf, pos, where)
            if pos + length > len(buf):
                raise BundleError(f"{where}: field {number} of {length} bytes runs past the message")
            value = bytes(buf[pos:pos + length])
            pos += length
        else:
            raise BundleError(f"{where}: unsupported protobuf wire type {wire} (field {number})")
        fields.append((number, value))
    return fields


def _shape(buf: bytes, where: str) -> tuple[int, ...]:
    """TensorShapeProto: repeated field 2 `dim` (Dim: 1 size, 2 name); 3 unknown_rank."""
    dims = []
    for number, value in _proto_fields(buf, where):
        if number == 2:
            size = next((v for n, v in _proto_fields(value, where) if n == 1), 0)
            if size >= 1 << 63:  # -1 (unknown) as a two's-complement varint
                raise BundleError(f"{where}: dimension of unknown size")
            dims.append(size)
        elif number == 3 and value:
            raise BundleError(f"{where}: shape of unknown rank")
    return tuple(dims)


def _block(index: bytes, offset: int, size: int, where: str) -> bytes:
    """The contents of the block at (offset, size), after checking its trailer."""
    if offset + size + TRAILER_SIZE > len(index) - FOOTER_SIZE:
        raise BundleError(f"{where}: block at {offset}+{size} runs past the end of the file ({len(index)} bytes)")
    compression = index[offset + size]
    if compression != 0:
        raise BundleError(f"{where}: block at {offset} is compressed (type {compression}); only uncompressed "
                          "bundles are supported")
    (stored_crc,) = struct.unpack_from("<I", index, offset + size + 1)
    if masked_crc32c(index[offset:offset + size + 1]) != stored_crc:
        raise BundleError(f"{where}: checksum mismatch in block at {offset}: the file is corrupt")
    return index[offset:offset + size]


def _block_entries(block: bytes, where: str) -> list[tuple[bytes, bytes]]:
    """[(key, value)] of one block, undoing the prefix compression of keys."""
    if len(block) < 4:
        raise BundleError(f"{where}: block of {len(block)} bytes is too short")
    (num_restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * num_restarts  # entries stop where the restart array begins
    if end < 0:
        raise BundleError(f"{where}: block claims {num_restarts} restart points, more than fit in it")
    entries: list[tuple[bytes, bytes]] = []
    key = b""
    pos = 0
    while pos < end:
        shared, pos = _varint(block, pos, where)
        unshared, pos = _varint(block, pos, where)
        value_len, pos = _varint(block, pos, where)
        if shared > len(key) or pos + unshared + value_len > end:
            raise BundleError(f"{where}: entry at {pos} of a block is inconsistent (shared {shared}, "
                              f"unshared {unshared}, value {value_len})")
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        entries.append((key, block[pos:pos + value_len]))
        pos += value_len
    return entries


def read_index(index_path: str | Path) -> dict[str, dict]:
    """{name: {"dtype", "shape", "shard_id", "offset", "size", "crc32c"}} of every tensor, and "" for the header."""
    index_path = Path(index_path)
    where = str(index_path)
    try:
        index = index_path.read_bytes()
    except OSError as e:
        raise BundleError(f"{where}: cannot read the index: {e.strerror}") from e
    if len(index) < FOOTER_SIZE:
        raise BundleError(f"{where}: {len(index)} bytes, shorter than an SSTable footer: not a tensor-bundle index")
    footer = index[-FOOTER_SIZE:]
    if struct.unpack("<Q", footer[-8:])[0] != MAGIC:
        raise BundleError(f"{where}: bad magic number in the footer: not a tensor-bundle index, or truncated")
    pos = 0
    handles = []
    for _ in range(2):  # metaindex handle, then index handle
        offset, pos = _varint(footer, pos, where)
        size, pos = _varint(footer, pos, where)
        handles.append((offset, size))
    index_block = _block(index, *handles[1], where)
    entries: dict[str, dict] = {}
    for _, handle in _block_entries(index_block, where):
        offset, p = _varint(handle, 0, where)
        size, _ = _varint(handle, p, where)
        for key, value in _block_entries(_block(index, offset, size, where), where):
            name = key.decode("utf-8", errors="replace")
            fields = dict(_proto_fields(value, f"{where}: {name!r}"))
            if name == "":
                entries[name] = {"num_shards": fields.get(1, 0), "endianness": fields.get(2, 0)}
                continue
            if 7 in fields:
                raise BundleError(f"{where}: {name!r} is stored as slices, which this reader does not support")
            entries[name] = {"dtype": fields.get(1, 0), "shape": _shape(fields.get(2, b""), f"{where}: {name!r}"),
                             "shard_id": fields.get(3, 0), "offset": fields.get(4, 0), "size": fields.get(5, 0),
                             "crc32c": fields.get(6)}
    if "" not in entries:
        raise BundleError(f"{where}: no bundle header (empty key): not a tensor-bundle index")
    return entries


def read_bundle(path: str | Path, verify_checksums: bool = False) -> dict[str, np.ndarray]:
    """{variable name: array} of a checkpoint; `path` is its `PREFIX.index` file (or PREFIX).

    `verify_checksums` also checks each tensor's CRC-32C (pure Python: seconds for a 10 MB checkpoint); the index's
    own blocks are always checked. Raises BundleError for a missing, truncated or corrupt file.
    """
    s = str(path)
    prefix = s[: -len(".index")] if s.endswith(".index") else s
    entries = read_index(prefix + ".index")
    header = entries.pop("")
    if header["endianness"] != 0:
        raise BundleError(f"{prefix}.index: big-endian bundle, not supported")
    num_shards = header["num_shards"]
    shards: dict[int, bytes] = {}
    out: dict[str, np.ndarray] = {}
    for name, e in sorted(entries.items()):
        where = f"{prefix}.index: {name!r}"
        if e["dtype"] not in DTYPES:
            raise BundleError(f"{where}: unsupported dtype {e['dtype']}")
        dtype = np.dtype(DTYPES[e["dtype"]]).newbyteorder("<")
        count = int(np.prod(e["shape"], dtype=np.int64)) if e["shape"] else 1
        if count * dtype.itemsize != e["size"]:
            raise BundleError(f"{where}: shape {e['shape']} of {dtype} needs {count * dtype.itemsize} bytes, "
                              f"the index says {e['size']}")
        if not 0 <= e["shard_id"] < num_shards:
            raise BundleError(f"{where}: shard {e['shard_id']} of a bundle of {num_shards} shards")
        if e["shard_id"] not in shards:
            data_path = Path(f"{prefix}.data-{e['shard_id']:05d}-of-{num_shards:05d}")
            try:
                shards[e["shard_id"]] = data_path.read_bytes()
            except OSError as err:
                raise BundleError(f"{data_path}: cannot read the data shard: {err.strerror}") from err
        data = shards[e["shard_id"]]
        if e["offset"] + e["size"] > len(data):
            raise BundleError(f"{where}: bytes {e['offset']}..{e['offset'] + e['size']} lie past the end of its "
                              f"data shard ({len(data)} bytes): truncated or corrupt")
        raw = data[e["offset"]:e["offset"] + e["size"]]
        if verify_checksums and e["crc32c"] is not None and masked_crc32c(raw) != e["crc32c"]:
            raise BundleError(f"{where}: checksum mismatch: the data shard is corrupt")
        out[name] = np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=True).reshape(e["shape"])
    return out


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python -m genre_cnn.models.tfbundle PATH/TO/PREFIX.index")
    for name, e in sorted(read_index(sys.argv[1]).items()):
        if name:
            print(f"{name:60s} {np.dtype(DTYPES.get(e['dtype'], np.void)).name:8s} {list(e['shape'])}")
