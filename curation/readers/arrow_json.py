"""Vectorised JSON encoding of Arrow arrays (for the ``metadata`` column of parquet sources).

``json_encode(array)`` returns one JSON text per element and ``json_encode_object(columns, names)``
one JSON object per row of a set of columns, built with ``pyarrow.compute`` string kernels.
An encoder returns *parts*: literal strings and arrays whose element-wise concatenation is
the JSON, so that an object's field names, quotes and separators and its fields' values are
joined in one ``binary_join_element_wise`` call. Strings are escaped (``\\``, ``"`` and control
characters) after one scan of their bytes says which escapes occur (numpy over the value
buffer: usually none), lists are joined with ``binary_join`` on list arrays rebuilt from the
original offsets, structs are objects. Only types without a kernel path (maps, unions,
non-UTF-8 binary, ...) fall back to ``orjson`` per element.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

_LS = pa.large_string()
_ESCAPES = {i: f"\\u{i:04x}" for i in range(32)} | {8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}
_EMPTY = pa.scalar("", _LS)

Parts = list  # of str (a literal) and pa.Array (large_string, no nulls)


def _value_bytes(arr: pa.Array) -> np.ndarray:
    """The UTF-8 bytes of a (large_)string array's values, as a numpy view (no copy)."""
    bufs = arr.buffers()
    if bufs[2] is None or len(arr) == 0:
        return np.empty(0, np.uint8)
    width = 8 if pa.types.is_large_string(arr.type) else 4
    offsets = np.frombuffer(bufs[1], np.int64 if width == 8 else np.int32, len(arr) + 1, arr.offset * width)
    return np.frombuffer(bufs[2], np.uint8)[offsets[0] : offsets[-1]]


def _escape(arr: pa.Array) -> pa.Array:
    """JSON string-body escaping of a large_string array (only the escapes whose bytes occur)."""
    data = _value_bytes(arr)
    if data.size == 0:
        return arr
    if (data == 92).any():
        arr = pc.replace_substring(arr, "\\", "\\\\")
    if (data == 34).any():
        arr = pc.replace_substring(arr, '"', '\\"')
    low = data[data < 32]
    for code in np.unique(low).tolist() if low.size else ():
        arr = pc.replace_substring(arr, chr(code), _ESCAPES[code])
    return arr


def _fallback(arr: pa.Array) -> pa.Array:
    def enc(v: object) -> str:
        if isinstance(v, (bytes, bytearray)):
            v = v.decode("utf-8", "backslashreplace")
        return orjson.dumps(v, default=str, option=orjson.OPT_NON_STR_KEYS).decode()

    return pa.array([enc(v) for v in arr.to_pylist()], _LS)


def _join(parts: Parts) -> pa.Array:
    """The element-wise concatenation of ``parts`` (at least one array among them)."""
    merged: list = []
    for p in parts:
        if isinstance(p, str) and merged and isinstance(merged[-1], str):
            merged[-1] += p
        elif not (isinstance(p, str) and not p):
            merged.append(p)
    if len(merged) == 1:
        return merged[0]
    args = [pa.scalar(p, _LS) if isinstance(p, str) else p for p in merged]
    return pc.binary_join_element_wise(*args, _EMPTY)


def _with_nulls(arr: pa.Array, parts: Parts) -> Parts:
    """``parts`` as they are, or one array with ``null`` where ``arr`` is null."""
    if not arr.null_count:
        return parts
    return [pc.if_else(pc.is_valid(arr), _join(parts), pa.scalar("null", _LS))]


def _list_parts(arr: pa.Array) -> Parts:
    t = arr.type
    if arr.null_count == 0 and not pa.types.is_fixed_size_list(t):
        offsets = arr.offsets
        values = arr.values
        lo, hi = offsets[0].as_py(), offsets[-1].as_py()
        if lo != 0 or hi != len(values):
            values = values.slice(lo, hi - lo)
            offsets = pc.subtract(offsets, lo)
        cls = pa.LargeListArray if pa.types.is_large_list(t) else pa.ListArray
        vt = values.type
        if (pa.types.is_string(vt) or pa.types.is_large_string(vt)) and not values.null_count:
            # strings: quoted by the separators, '["' + '","'.join(escaped) + '"]', in one pass
            joined = pc.binary_join(cls.from_arrays(offsets, _escape(values.cast(_LS))), pa.scalar('","', _LS))
            parts = ['["', joined, '"]']
            lengths = np.diff(offsets.to_numpy(zero_copy_only=False))
            if (lengths == 0).any():  # an empty list is [], not [""]
                return [pc.if_else(pa.array(lengths == 0), pa.scalar("[]", _LS), _join(parts))]
            return parts
        rebuilt = cls.from_arrays(offsets, json_encode(values))
    else:
        lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
        offsets_np = np.zeros(len(arr) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets_np[1:])
        rebuilt = pa.LargeListArray.from_arrays(pa.array(offsets_np, pa.int64()), json_encode(pc.list_flatten(arr)))
    return _with_nulls(arr, ["[", pc.binary_join(rebuilt, pa.scalar(",", _LS)), "]"])


def _object_parts(columns: Sequence[pa.Array], names: Sequence[str]) -> Parts:
    if not names:
        return ["{}"]
    parts: Parts = []
    for i, (col, name) in enumerate(zip(columns, names)):
        parts.append(("{" if i == 0 else ",") + orjson.dumps(name).decode() + ":")
        parts.extend(_parts(col))
    parts.append("}")
    return parts


def _parts(arr: pa.Array) -> Parts:
    """The JSON of every element of ``arr`` as parts."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks else pa.array([], arr.type)
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_null(t):
        return ["null"] if len(arr) else [pa.array([], _LS)]
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return _with_nulls(arr, ['"', _escape(arr.cast(_LS)), '"'])
    if pa.types.is_boolean(t):
        out = pc.if_else(arr, pa.scalar("true", _LS), pa.scalar("false", _LS))
    elif pa.types.is_integer(t) or pa.types.is_decimal(t):
        out = arr.cast(_LS)
    elif pa.types.is_floating(t):
        out = pc.if_else(pc.is_finite(arr), arr.cast(_LS), pa.scalar("null", _LS))
    elif pa.types.is_temporal(t) and not pa.types.is_duration(t) and not pa.types.is_interval(t):
        return _with_nulls(arr, ['"', arr.cast(_LS), '"'])
    elif pa.types.is_duration(t):
        out = arr.cast(pa.int64()).cast(_LS)
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        try:
            return _with_nulls(arr, ['"', _escape(arr.cast(pa.large_binary()).cast(_LS)), '"'])
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            out = _fallback(arr)
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        return _list_parts(arr)
    elif pa.types.is_struct(t):
        fields = [arr.field(i) for i in range(t.num_fields)]
        return _with_nulls(arr, _object_parts(fields, [t.field(i).name for i in range(t.num_fields)]))
    else:
        out = _fallback(arr)
    if arr.null_count:
        out = pc.if_else(pc.is_valid(arr), out, pa.scalar("null", _LS))
    return [out]


def _as_array(parts: Parts, n: int) -> pa.Array:
    if all(isinstance(p, str) for p in parts):
        return pa.array(["".join(parts)] * n, _LS)
    return _join(parts)


def json_encode(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One JSON text per element (``large_string``, never null: a null element is ``null``)."""
    return _as_array(_parts(arr), len(arr))


def json_encode_object(columns: Sequence[pa.Array], names: Sequence[str]) -> pa.Array:
    """One JSON object ``{"name": value, ...}`` per row of ``columns`` (``large_string``)."""
    if not columns:
        raise ValueError("json_encode_object needs at least one column")
    return _as_array(_object_parts(columns, names), len(columns[0]))
