"""Read a GGUF file's metadata header without loading the model (stdlib only).

Used to report a GGUF's real context window (``<arch>.context_length``) and to turn "this file is not a
model" into a clear message before llama.cpp tries to load it. Layout (GGUF v2/v3, little-endian):
``b"GGUF"``, u32 version, u64 tensor count, u64 key/value count, then the key/value pairs, each
``string key, u32 value type, value``; a string is ``u64 length + UTF-8 bytes``; an array is
``u32 element type, u64 count, elements``. Reference: ggml's docs/gguf.md
(https://github.com/ggml-org/ggml/blob/master/docs/gguf.md).
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import IO, Any

GGUF_MAGIC = b"GGUF"

# value type -> struct format of one scalar (8 = string, 9 = array are handled apart)
_SCALARS: dict[int, str] = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9


class GGUFError(ValueError):
    """The file is not a readable GGUF file (the message says why, naming the file)."""


class _Reader:
    def __init__(self, handle: IO[bytes], path: Path) -> None:
        self.handle = handle
        self.path = path

    def take(self, size: int) -> bytes:
        data = self.handle.read(size)
        if len(data) != size:
            raise GGUFError(f"{self.path} is truncated: its GGUF header ends early")
        return data

    def unpack(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def string(self) -> str:
        size = self.unpack("<Q")
        if size > 1 << 26:
            raise GGUFError(f"{self.path} is corrupt: a GGUF string claims {size} bytes")
        return self.take(size).decode("utf-8", "replace")

    def value(self, kind: int) -> Any:
        if kind in _SCALARS:
            return self.unpack(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            self.skip_array()
            return None
        raise GGUFError(f"{self.path} is corrupt: unknown GGUF value type {kind}")

    def skip_array(self) -> None:
        kind, count = self.unpack("<I"), self.unpack("<Q")
        if kind in _SCALARS:
            self.handle.seek(struct.calcsize(_SCALARS[kind]) * count, 1)
        elif kind == _STRING:
            for _ in range(count):
                self.handle.seek(self.unpack("<Q"), 1)
        elif kind == _ARRAY:
            for _ in range(count):
                self.skip_array()
        else:
            raise GGUFError(f"{self.path} is corrupt: unknown GGUF array type {kind}")


def read_metadata(path: str | Path) -> dict[str, Any]:
    """The scalar and string metadata of a GGUF file (arrays such as the vocabulary are skipped)."""
    path = Path(path)
    try:
        handle = path.open("rb")
    except FileNotFoundError:
        raise GGUFError(f"{path} does not exist") from None
    except OSError as exc:
        raise GGUFError(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        reader = _Reader(handle, path)
        magic = handle.read(4)
        if magic != GGUF_MAGIC:
            raise GGUFError(f"{path} is not a GGUF model file (it starts with {magic!r}, not b'GGUF')")
        version = reader.unpack("<I")
        if version not in (2, 3):
            raise GGUFError(f"{path} uses GGUF version {version}; versions 2 and 3 are supported")
        reader.unpack("<Q")  # tensor count
        count = reader.unpack("<Q")
        metadata: dict[str, Any] = {}
        for _ in range(count):
            key = reader.string()
            value = reader.value(reader.unpack("<I"))
            if value is not None:
                metadata[key] = value
        return metadata


def context_length(metadata: dict[str, Any]) -> int | None:
    """The context length the model was trained for (``<architecture>.context_length``)."""
    arch = metadata.get("general.architecture")
    value = metadata.get(f"{arch}.context_length") if arch else None
    return int(value) if isinstance(value, int) and value > 0 else None
