#!/usr/bin/env python3
"""Writes the IDX corpus beside this file: good_* files that must load and bad_* files that
must be rejected (tests/test_idx.c checks both; `make fuzz` uses them as seeds)."""
import gzip, os, struct
HERE = os.path.dirname(os.path.abspath(__file__))
def idx(code, dims, body): return bytes([0, 0, code, len(dims)]) + struct.pack(">" + "I" * len(dims), *dims) + body
def put(name, data):
    open(os.path.join(HERE, name), "wb").write(data)
def gz(data): return gzip.compress(data, mtime=0)
good = {
    "good_u8_2x3": idx(0x08, [2, 3], bytes(range(6))),
    "good_i8_4": idx(0x09, [4], struct.pack(">bbbb", -128, -1, 0, 127)),
    "good_i16_3": idx(0x0B, [3], struct.pack(">hhh", 1, 2, -3)),
    "good_i32_2x2": idx(0x0C, [2, 2], struct.pack(">iiii", -2**31, 2**31 - 1, 0, 7)),
    "good_f32_3": idx(0x0D, [3], struct.pack(">fff", 1.5, -0.0, float("inf"))),
    "good_f64_1x1x2": idx(0x0E, [1, 1, 2], struct.pack(">dd", 3.25, -1e300)),
    "good_u8_4d": idx(0x08, [1, 2, 2, 2], bytes(range(8))),
    "good_empty_0x28": idx(0x08, [0, 28], b""),
}
for k, v in good.items():
    put(k, v)
put("good_u8_2x3.gz", gz(good["good_u8_2x3"]))
put("good_f64.gz", gz(good["good_f64_1x1x2"]))
bad = {
    "bad_empty": b"",
    "bad_magic": bytes([1, 0, 8, 1, 0, 0, 0, 1, 0]),
    "bad_type_0a": bytes([0, 0, 0x0A, 1, 0, 0, 0, 1, 0]),
    "bad_zero_dims": bytes([0, 0, 8, 0, 5]),
    "bad_absurd_dims": bytes([0, 0, 8, 200, 0, 0, 0, 1]),
    "bad_absurd_size": idx(0x08, [2**31], b"\x00"),
    "bad_overflow": idx(0x0E, [2**31 - 1] * 4, b"\x01"),
    "bad_empty_overflow": idx(0x0E, [0x7F000B, 0x8400000, 0x11000000, 0], b""),  # found by make fuzz
    "bad_short": idx(0x08, [5], b"\x01\x02\x03"),
    "bad_long": idx(0x08, [2], b"\x01\x02\x03"),
    "bad_trunc_header": bytes([0, 0, 8, 2, 0, 0]),
    "bad_garbage.gz": bytes([0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0x34, 0x56, 0x78]),
    "bad_gzipped_garbage.gz": gz(bytes([0x5e, 0x11, 0xa7, 0x03, 0x9c, 0x42])),
    "bad_short.gz": gz(idx(0x08, [5], b"\x01\x02\x03")),
    "bad_long.gz": gz(idx(0x08, [2], b"\x01\x02\x03")),
    "bad_huge_claim.gz": gz(idx(0x08, [65536, 65536], b"\x01")),
}
g = gz(idx(0x08, [300], bytes(i * 13 % 256 for i in range(300))))
bad["bad_truncated.gz"] = g[:-12]
crc = bytearray(g); crc[-6] ^= 0x55; bad["bad_crc.gz"] = bytes(crc)
bad["bad_trailing.gz"] = g + b"JUNK"
for k, v in bad.items():
    put(k, v)
