"""Minimal writers for the files tlc reads: safetensors and llm.c token shards."""
import json
import struct

import numpy as np

_DTYPES = {np.dtype("float64"): "F64", np.dtype("float32"): "F32", np.dtype("int32"): "I32"}


def write_safetensors(path, tensors):
    header, offset, blobs = {}, 0, []
    for name, array in tensors.items():
        array = np.ascontiguousarray(array)
        data = array.astype(array.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": _DTYPES[array.dtype], "shape": list(array.shape),
                        "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def write_shard(path, tokens):
    header = np.zeros(256, dtype="<i4")
    header[0], header[1], header[2] = 20240520, 1, len(tokens)
    with open(path, "wb") as f:
        f.write(header.tobytes())
        f.write(np.asarray(tokens, dtype="<u2").tobytes())


def read_shard(path):
    with open(path, "rb") as f:
        header = np.frombuffer(f.read(1024), dtype="<i4")
        assert header[0] == 20240520 and header[1] == 1
        return np.frombuffer(f.read(), dtype="<u2")[: header[2]].astype(np.int64)


def read_safetensors(path):
    with open(path, "rb") as f:
        (length,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(length))
        data = f.read()
    types = {"F64": "<f8", "F32": "<f4", "I32": "<i4", "F16": "<f2", "BF16": "<u2"}
    out = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        a = np.frombuffer(data[begin:end], dtype=types[entry["dtype"]]).reshape(entry["shape"])
        if entry["dtype"] == "BF16":  # the top half of an f32
            a = (a.astype(np.uint32) << 16).view(np.float32)
        out[name] = a.astype(np.float32) if entry["dtype"] == "F16" else a
    return out
