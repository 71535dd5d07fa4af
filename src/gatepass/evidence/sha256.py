"""
SHA-256 (FIPS 180-4) that can stop after some blocks and be resumed elsewhere.

An evidence bundle proves that a record it does not disclose links the chain
without showing the record: the broker hashes the record's leading 64-byte blocks
and hands over only the compression state after them (:func:`midstate`); the
verifier resumes from that state with the few bytes that end the record, which
include the previous record's hash (:func:`resume`). ``hashlib`` exposes no
intermediate state, hence this implementation; it is checked against ``hashlib``
by property tests. It is slow (pure Python, ~50 µs a block), so the broker uses
it only on the leading blocks of the records it does not disclose, and verifiers
only on their last block or two.
"""

from __future__ import annotations

import struct
from typing import Final

__all__ = ["BLOCK_BYTES", "INITIAL_STATE", "midstate", "resume"]

BLOCK_BYTES: Final = 64
_MASK: Final = 0xFFFFFFFF
INITIAL_STATE: Final = (
    0x6A09E667,
    0xBB67AE85,
    0x3C6EF372,
    0xA54FF53A,
    0x510E527F,
    0x9B05688C,
    0x1F83D9AB,
    0x5BE0CD19,
)
_K: Final = (
    0x428A2F98, 0x71374491, 0xB5C0FBCF, 0xE9B5DBA5, 0x3956C25B, 0x59F111F1,
    0x923F82A4, 0xAB1C5ED5, 0xD807AA98, 0x12835B01, 0x243185BE, 0x550C7DC3,
    0x72BE5D74, 0x80DEB1FE, 0x9BDC06A7, 0xC19BF174, 0xE49B69C1, 0xEFBE4786,
    0x0FC19DC6, 0x240CA1CC, 0x2DE92C6F, 0x4A7484AA, 0x5CB0A9DC, 0x76F988DA,
    0x983E5152, 0xA831C66D, 0xB00327C8, 0xBF597FC7, 0xC6E00BF3, 0xD5A79147,
    0x06CA6351, 0x14292967, 0x27B70A85, 0x2E1B2138, 0x4D2C6DFC, 0x53380D13,
    0x650A7354, 0x766A0ABB, 0x81C2C92E, 0x92722C85, 0xA2BFE8A1, 0xA81A664B,
    0xC24B8B70, 0xC76C51A3, 0xD192E819, 0xD6990624, 0xF40E3585, 0x106AA070,
    0x19A4C116, 0x1E376C08, 0x2748774C, 0x34B0BCB5, 0x391C0CB3, 0x4ED8AA4A,
    0x5B9CCA4F, 0x682E6FF3, 0x748F82EE, 0x78A5636F, 0x84C87814, 0x8CC70208,
    0x90BEFFFA, 0xA4506CEB, 0xBEF9A3F7, 0xC67178F2,
)  # fmt: skip


_WORDS = struct.Struct(">16I")


def _compress(state: tuple[int, ...], block: bytes) -> tuple[int, ...]:
    # Rotations are written out (x >> n | x << 32 - n) and only sums are masked:
    # a carry never flows down, so bits above 32 cannot change the low 32 bits of
    # a sum, and leaving them until the mask is several times faster in CPython
    # than a helper call and a mask per rotation.
    mask, k = _MASK, _K
    w = list(_WORDS.unpack(block))
    append = w.append
    for i in range(16, 64):
        x, y = w[i - 15], w[i - 2]
        s0 = (x >> 7 | x << 25) ^ (x >> 18 | x << 14) ^ (x >> 3)
        s1 = (y >> 17 | y << 15) ^ (y >> 19 | y << 13) ^ (y >> 10)
        append((w[i - 16] + s0 + w[i - 7] + s1) & mask)
    a, b, c, d, e, f, g, h = state
    for i in range(64):
        s1 = (e >> 6 | e << 26) ^ (e >> 11 | e << 21) ^ (e >> 25 | e << 7)
        t1 = (h + s1 + ((e & f) ^ (~e & g)) + k[i] + w[i]) & mask
        s0 = (a >> 2 | a << 30) ^ (a >> 13 | a << 19) ^ (a >> 22 | a << 10)
        t2 = s0 + ((a & b) ^ (a & c) ^ (b & c))
        h, g, f, e = g, f, e, (d + t1) & mask
        d, c, b, a = c, b, a, (t1 + t2) & mask
    return (
        (state[0] + a) & mask,
        (state[1] + b) & mask,
        (state[2] + c) & mask,
        (state[3] + d) & mask,
        (state[4] + e) & mask,
        (state[5] + f) & mask,
        (state[6] + g) & mask,
        (state[7] + h) & mask,
    )


def midstate(data: bytes) -> tuple[tuple[int, ...], int]:
    """
    Absorb the whole 64-byte blocks at the start of ``data``.

    Args:
        data: the message, or any prefix of it.

    Returns:
        The eight-word state after those blocks and how many bytes they were (a
        multiple of 64, at most ``len(data)``); the rest of ``data`` is for
        :func:`resume`.
    """
    length = len(data) - len(data) % BLOCK_BYTES
    state: tuple[int, ...] = INITIAL_STATE
    for start in range(0, length, BLOCK_BYTES):
        state = _compress(state, data[start : start + BLOCK_BYTES])
    return state, length


def resume(state: tuple[int, ...], absorbed: int, rest: bytes) -> bytes:
    """
    Finish a SHA-256 from a state after ``absorbed`` bytes, with the rest.

    Args:
        state: eight 32-bit words, from :func:`midstate`.
        absorbed: how many bytes that state covers (a multiple of 64).
        rest: every byte of the message after those.

    Returns:
        The 32-byte digest of the whole message.

    Raises:
        ValueError: ``absorbed`` is not a non-negative multiple of 64 or the state
            is not eight 32-bit words.
    """
    if absorbed < 0 or absorbed % BLOCK_BYTES:
        raise ValueError("absorbed length is not a multiple of 64")
    if len(state) != len(INITIAL_STATE) or any(not 0 <= w <= _MASK for w in state):
        raise ValueError("state is not eight 32-bit words")
    total = absorbed + len(rest)
    # FIPS 180-4 §5.1.1: a one bit, zeros to 56 mod 64, then the bit length.
    padding = b"\x80" + b"\x00" * ((55 - total) % BLOCK_BYTES)
    tail = rest + padding + struct.pack(">Q", (total * 8) & (2**64 - 1))
    for start in range(0, len(tail), BLOCK_BYTES):
        state = _compress(state, tail[start : start + BLOCK_BYTES])
    return struct.pack(">8I", *state)
