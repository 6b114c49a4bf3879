"""Reading and writing safetensors files with numpy only (the format: an 8-byte little-endian header length, a
JSON header {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then the tensors back to back).
BF16 is widened to float32 exactly (bf16 bits are the top half of an f32)."""

import json
import struct

import numpy as np

DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32, "U8": np.uint8}
NAMES = {np.dtype(v): k for k, v in DTYPES.items()}


def read(path):
    """(tensors {name: ndarray}, metadata {str: str}, raw {name: (dtype, shape, bytes)})."""
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    meta = header.pop("__metadata__", {})
    tensors, raw = {}, {}
    for name, info in header.items():
        a, b = info["data_offsets"]
        data = blob[8 + n + a:8 + n + b]
        raw[name] = (info["dtype"], info["shape"], data)
        if info["dtype"] == "BF16":
            bits = np.frombuffer(data, dtype="<u2").astype(np.uint32) << 16
            arr = bits.view(np.float32)
        else:
            arr = np.frombuffer(data, dtype=np.dtype(DTYPES[info["dtype"]]).newbyteorder("<"))
        tensors[name] = arr.reshape(info["shape"])
    return tensors, meta, raw


def write(path, tensors, metadata, raw=None):
    """Writes `tensors` (ndarrays, whose dtype names the stored type) plus `raw` entries copied byte for byte,
    names sorted, the header padded with spaces to 8 bytes as the reference writers do."""
    entries = dict(raw or {})
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        entries[name] = (NAMES[arr.dtype], list(arr.shape), arr.astype(arr.dtype.newbyteorder("<")).tobytes())
    header, body, offset = {}, [], 0
    for name in sorted(entries):
        dtype, shape, data = entries[name]
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + len(data)]}
        body.append(data)
        offset += len(data)
    header["__metadata__"] = {k: str(v) for k, v in metadata.items()}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-(8 + len(text)) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in body:
            f.write(data)
