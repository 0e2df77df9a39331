"""Vectorised JSON encoding of Arrow arrays (for the ``metadata`` column of parquet sources).

``json_encode(array)`` returns one JSON text per element, built with
``pyarrow.compute`` string kernels: strings are escaped (``\\``, ``"`` and control
characters) and quoted, lists are joined with ``binary_join`` on rebuilt list
arrays, structs are joined field by field. Only types without a kernel path (maps,
unions, non-UTF-8 binary, ...) fall back to ``orjson`` per element.
"""

from __future__ import annotations

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

_LS = pa.large_string()
_ESCAPES = {i: f"\\u{i:04x}" for i in range(32)} | {8: "\\b", 9: "\\t", 10: "\\n", 12: "\\f", 13: "\\r"}


def _any(mask: pa.Array) -> bool:
    return bool(pc.any(mask).as_py())


def _escape(arr: pa.Array) -> pa.Array:
    """JSON string-body escaping of a (large_)string array (one scan when nothing needs escaping)."""
    if not _any(pc.match_substring_regex(arr, r'[\\"\x00-\x1f]')):
        return arr
    if _any(pc.match_substring(arr, "\\")):
        arr = pc.replace_substring(arr, "\\", "\\\\")
    if _any(pc.match_substring(arr, '"')):
        arr = pc.replace_substring(arr, '"', '\\"')
    if _any(pc.match_substring_regex(arr, r"[\x00-\x1f]")):
        for code, esc in _ESCAPES.items():
            ch = chr(code)
            if _any(pc.match_substring(arr, ch)):
                arr = pc.replace_substring(arr, ch, esc)
    return arr


def _quote(arr: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(pa.scalar('"', _LS), arr, pa.scalar('"', _LS), pa.scalar("", _LS))


def _fallback(arr: pa.Array) -> pa.Array:
    def enc(v: object) -> str:
        if isinstance(v, (bytes, bytearray)):
            v = v.decode("utf-8", "backslashreplace")
        return orjson.dumps(v, default=str, option=orjson.OPT_NON_STR_KEYS).decode()

    return pa.array([enc(v) for v in arr.to_pylist()], _LS)


def _list_encode(arr: pa.Array) -> pa.Array:
    lengths = pc.fill_null(pc.list_value_length(arr), 0).to_numpy(zero_copy_only=False).astype(np.int64)
    offsets = np.zeros(len(arr) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    child = json_encode(pc.list_flatten(arr))
    rebuilt = pa.LargeListArray.from_arrays(pa.array(offsets, pa.int64()), child)
    joined = pc.binary_join(rebuilt, pa.scalar(",", _LS))
    return pc.binary_join_element_wise(pa.scalar("[", _LS), joined, pa.scalar("]", _LS), pa.scalar("", _LS))


def _struct_encode(arr: pa.StructArray) -> pa.Array:
    t = arr.type
    if t.num_fields == 0:
        return pa.array(["{}"] * len(arr), _LS)
    pieces = []
    for i in range(t.num_fields):
        name = orjson.dumps(t.field(i).name).decode()
        sep = "{" if i == 0 else ","
        pieces.append(pa.scalar(f"{sep}{name}:", _LS))
        pieces.append(json_encode(pc.struct_field(arr, [i])))
    pieces.append(pa.scalar("}", _LS))
    return pc.binary_join_element_wise(*pieces, pa.scalar("", _LS))


def json_encode(arr: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One JSON text per element (``large_string``, never null: a null element is ``null``)."""
    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks() if arr.num_chunks else pa.array([], arr.type)
    t = arr.type
    if pa.types.is_dictionary(t):
        arr = arr.dictionary_decode()
        t = arr.type
    if pa.types.is_null(t):
        return pa.array(["null"] * len(arr), _LS)
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        out = _quote(_escape(arr.cast(_LS)))
    elif pa.types.is_boolean(t):
        out = pc.if_else(arr, pa.scalar("true", _LS), pa.scalar("false", _LS))
    elif pa.types.is_integer(t):
        out = arr.cast(_LS)
    elif pa.types.is_floating(t):
        finite = pc.is_finite(arr)
        out = pc.if_else(finite, arr.cast(_LS), pa.scalar("null", _LS))
    elif pa.types.is_decimal(t):
        out = arr.cast(_LS)
    elif pa.types.is_temporal(t) and not pa.types.is_duration(t) and not pa.types.is_interval(t):
        out = _quote(arr.cast(_LS))
    elif pa.types.is_duration(t):
        out = arr.cast(pa.int64()).cast(_LS)
    elif pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_fixed_size_binary(t):
        try:
            out = _quote(_escape(arr.cast(pa.large_binary()).cast(_LS)))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            out = _fallback(arr)
    elif pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        out = _list_encode(arr)
    elif pa.types.is_struct(t):
        out = _struct_encode(arr)
    else:
        out = _fallback(arr)
    if arr.null_count:
        out = pc.if_else(pc.is_null(arr), pa.scalar("null", _LS), out)
    return out
