"""Unit tests and fuzzing of the GQ GMC Geiger counter codec (GQ-RFC1201)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ilrs_robots.protocols import gmc
from ilrs_robots.protocols.gmc import BurstFramer, CommandParser, GmcProtocolError, Version


def test_commands_are_ascii_in_angle_brackets() -> None:
    assert gmc.encode_command(gmc.GETVER) == b"<GETVER>>"
    assert gmc.encode_command(gmc.GETCPM) == b"<GETCPM>>"
    assert gmc.encode_command(gmc.HEARTBEAT1) == b"<HEARTBEAT1>>"
    assert gmc.encode_command(gmc.HEARTBEAT0) == b"<HEARTBEAT0>>"
    assert gmc.encode_command(gmc.GETVOLT) == b"<GETVOLT>>"
    for bad in ("", "getcpm", "GET CPM", "GET>>", "Ä"):
        with pytest.raises(GmcProtocolError):
            gmc.encode_command(bad)


def test_rfc_examples() -> None:
    assert gmc.decode_cpm(bytes.fromhex("001C")) == 28  # RFC1201's example
    assert gmc.decode_cpm(bytes.fromhex("0BEA")) == 3050
    assert gmc.decode_cpm(bytes.fromhex("0001E240")) == 123456  # 4-byte firmware
    assert gmc.decode_heartbeat(bytes.fromhex("001C")) == 28
    assert gmc.decode_heartbeat(bytes.fromhex("C01C")) == 28  # reserved bits 15, 14 set
    assert gmc.decode_heartbeat(bytes.fromhex("FFFF")) == 16383
    assert gmc.decode_volt(bytes.fromhex("62")) == pytest.approx(9.8)  # RFC1201's example
    assert gmc.decode_volt(b"4.1v\x00") == pytest.approx(4.1)  # 500/600 series
    for bad in (b"", b"\x00", b"\x00\x00\x00", b"\x00" * 5):
        with pytest.raises(GmcProtocolError):
            gmc.decode_cpm(bad)
    with pytest.raises(GmcProtocolError):
        gmc.decode_volt(b"abcde")


@pytest.mark.parametrize(("raw", "model", "major", "minor", "width"), [
    (b"GMC-320Re 4.26", "GMC-320", 4, 26, 2),
    (b"GMC-300Re 2.10", "GMC-300", 2, 10, 2),
    (b"GMC-300SRe 1.03", "GMC-300S", 1, 3, 2),
    (b"GMC-320Re 5.71", "GMC-320", 5, 71, 4),
    (b"GMC-320+V5\x00RRe 5.73", "GMC-320+V5", 5, 73, 4),  # a NUL inside (seen in the wild)
    (b"GMC-500+Re 2.28", "GMC-500+", 2, 28, 4),
    (b"GMC-600Re 1.10", "GMC-600", 1, 10, 4),
])
def test_versions_and_reply_width(raw, model, major, minor, width) -> None:
    v = gmc.decode_version(raw)
    assert (v.model, v.major, v.minor) == (model, major, minor)
    assert gmc.cpm_width(v) == width


def test_version_encoder_gives_14_bytes() -> None:
    raw = gmc.encode_version("GMC-320", "4.26")
    assert len(raw) == gmc.VERSION_LEN
    assert gmc.decode_version(raw) == Version("GMC-320", 4, 26, "GMC-320Re 4.26")
    for bad in (b"", b"\x00" * 14, b"hello world!!!", b"GMC-320 4.26", b"\xff\xfeRe 1.0"):
        with pytest.raises(GmcProtocolError):
            gmc.decode_version(bad)


def test_encoders_saturate() -> None:
    assert gmc.encode_count(70000, 2) == b"\xff\xff"
    assert gmc.encode_count(-5, 4) == b"\x00\x00\x00\x00"
    assert gmc.encode_heartbeat(20000, 2) == bytes.fromhex("3FFF")  # 14 bits at most
    assert gmc.encode_heartbeat(28, 2, reserved=2) == bytes.fromhex("801C")
    assert gmc.encode_volt(9.8) == b"\x62"
    with pytest.raises(GmcProtocolError):
        gmc.encode_count(1, 3)


def test_parser_skips_garbage_and_broken_requests() -> None:
    p = CommandParser()
    assert p.feed(b"<GETVER>>") == ["GETVER"]
    assert p.feed(b"\x00\xffxx<GETC") == []
    assert p.feed(b"PM>><HEARTBEAT1>>") == ["GETCPM", "HEARTBEAT1"]
    assert p.garbage == 4
    assert p.feed(b"<GETC<GETVOLT>>") == ["GETVOLT"]  # a new '<' restarts
    assert p.feed(b"<get cpm>><GETCPM>>") == ["GETCPM"]  # bad body dropped
    assert p.feed(b"<" + b"A" * 40 + b">><GETVER>>") == ["GETVER"]  # too long


def test_parser_drops_a_stale_partial_request() -> None:
    p = CommandParser(timeout=0.5)
    assert p.feed(b"<GETC", now=0.0) == []
    assert p.feed(b"PM>>", now=1.0) == []  # the rest arrived too late: garbage
    assert p.feed(b"<GETCPM>>", now=1.1) == ["GETCPM"]


def test_burst_framer_cuts_by_silence() -> None:
    f = BurstFramer(gap=0.1)
    f.feed(b"\x00", 1.0)
    f.feed(b"\x1c", 1.001)
    assert f.poll(1.05) == []
    assert f.poll(1.2) == [(1.001, b"\x00\x1c")]
    f.feed(b"\xaa\xbb\xcc", 2.0)
    f.feed(b"\x00\x05", 3.0)  # the previous burst ends when this one starts late
    assert f.poll(3.01) == [(2.0, b"\xaa\xbb\xcc")]
    assert f.poll(3.5) == [(3.0, b"\x00\x05")]


# -- fuzzing ---------------------------------------------------------------------------------
@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=64))
def test_decoders_raise_only_protocol_errors(data: bytes) -> None:
    for decode in (gmc.decode_version, gmc.decode_cpm, gmc.decode_heartbeat, gmc.decode_volt):
        try:
            decode(data)
        except GmcProtocolError:
            pass


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 0xFFFFFFFF), st.sampled_from([2, 4]), st.integers(0, 3))
def test_counts_round_trip(value: int, width: int, reserved: int) -> None:
    raw = gmc.encode_count(value, width)
    assert len(raw) == width
    assert gmc.decode_cpm(raw) == min(value, (1 << (8 * width)) - 1)
    hb = gmc.encode_heartbeat(value, width, reserved)
    expected = min(value, 0x3FFF) if width == 2 else value
    assert gmc.decode_heartbeat(hb) == expected


_commands = st.lists(st.sampled_from(gmc.COMMANDS), max_size=8)
_noise = st.binary(max_size=12).map(lambda b: b.replace(b"<", b"."))


@settings(max_examples=300, deadline=None)
@given(_commands, st.lists(_noise, min_size=9, max_size=9), st.lists(st.integers(1, 7),
                                                                      max_size=40))
def test_parser_recovers_every_command_between_noise(commands, noise, splits) -> None:
    """Noise (without '<') between requests, the stream split anywhere: every request is
    found, in order, and nothing else."""
    pairs = zip(commands, noise[1:len(commands) + 1], strict=True)
    stream = noise[0] + b"".join(gmc.encode_command(c) + n for c, n in pairs)
    p = CommandParser()
    found: list[str] = []
    i = 0
    for size in splits + [len(stream)]:
        found += p.feed(stream[i:i + size])
        i += size
    found += p.feed(stream[i:])
    assert found == commands


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=200), st.sampled_from(gmc.COMMANDS))
def test_parser_survives_any_bytes_then_syncs(garbage: bytes, command: str) -> None:
    p = CommandParser()
    p.feed(garbage)
    # whatever state the garbage left, a full request after a '>>' terminator is found
    assert command in p.feed(b">>" + gmc.encode_command(command))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 0x3FFF), min_size=1, max_size=20),
       st.lists(st.integers(1, 3), max_size=20))
def test_framer_recovers_heartbeats_split_anyhow(counts, splits) -> None:
    """Heartbeats one second apart, each delivered in pieces within a millisecond: one burst
    per heartbeat, decoding to the counts sent."""
    f = BurstFramer(gap=0.1)
    for k, c in enumerate(counts):
        raw = gmc.encode_heartbeat(c)
        pieces = [raw[:splits[k % len(splits)] % 2 + 1], raw[splits[k % len(splits)] % 2 + 1:]] \
            if splits else [raw]
        for j, piece in enumerate(pieces):
            f.feed(piece, k + j * 1e-3)
    bursts = f.poll(len(counts) + 1.0)
    assert [gmc.decode_heartbeat(b) for _, b in bursts] == counts
