"""Unit tests and fuzzing of the RoboClaw packet-serial codec."""

from __future__ import annotations

import binascii

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ilrs_robots.protocols import roboclaw as rc
from ilrs_robots.protocols.roboclaw import (
    Cmd,
    Currents,
    EncoderReading,
    ErrorFlag,
    PairReading,
    Request,
    RequestParser,
    RoboClawProtocolError,
    SpeedReading,
    Status,
    WarnFlag,
    crc16,
    decode_reply,
    encode_read,
    encode_reply,
    encode_write,
    reply_length,
)

READS = [c for c in Cmd if rc.is_read(c)]
WRITES = [c for c in Cmd if rc.is_write(c)]
addresses = st.integers(0x80, 0x87)
s32 = st.integers(-(2**31), 2**31 - 1)
u32 = st.integers(0, 2**32 - 1)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# -- CRC -------------------------------------------------------------------------------------

def test_crc_check_value() -> None:
    assert crc16(b"123456789") == 0x31C3
    assert crc16(b"") == 0


def test_crc_known_packets() -> None:
    assert crc16(h("8014")) == 0x492D
    assert crc16(h("8020 4000")) == 0x5632


def test_crc_is_incremental() -> None:
    assert crc16(b"56789", crc16(b"1234")) == 0x31C3


@given(st.binary(max_size=64))
def test_crc_matches_stdlib_crc_hqx(data: bytes) -> None:
    assert crc16(data) == binascii.crc_hqx(data, 0)


# -- host-side encoders, byte-exact ----------------------------------------------------------

@pytest.mark.parametrize(("address", "cmd", "args", "expected"), [
    (0x80, Cmd.RESET_ENC, (), "80 14 492d"),
    (0x80, Cmd.DUTY_M1, (0,), "80 20 0000 5bfe"),
    (0x80, Cmd.DUTY_M1, (16384,), "80 20 4000 5632"),
    (0x80, Cmd.DUTY_M1, (-32767,), "80 20 8001 5047"),
    (0x81, Cmd.DUTY_M2, (-1,), "81 21 ffff 0775"),
    (0x80, Cmd.SPEED_ACCEL_M1, (20000, 10000), "80 26 00004e20 00002710 7607"),
    (0x81, Cmd.SPEED_ACCEL_M2, (1000, -1000), "81 27 000003e8 fffffc18 2bb2"),
    (0x80, Cmd.SPEED_ACCEL_MIXED, (20000, 10000, -5000),
     "80 28 00004e20 00002710 ffffec78 4acd"),
])
def test_encode_write_bytes(address: int, cmd: Cmd, args: tuple[int, ...], expected: str) -> None:
    assert encode_write(address, cmd, *args) == h(expected)


def test_encode_read_bytes() -> None:
    assert encode_read(0x80, Cmd.READ_ENC_M1) == h("80 10")
    assert encode_read(0x87, Cmd.READ_STATUS) == h("87 5a")


@pytest.mark.parametrize(("address", "cmd", "args"), [
    (0x7F, Cmd.RESET_ENC, ()),
    (0x88, Cmd.RESET_ENC, ()),
    (0x80, Cmd.READ_ENC_M1, ()),  # not a write
    (0x80, 99, ()),
    (0x80, Cmd.RESET_ENC, (1,)),
    (0x80, Cmd.DUTY_M1, ()),
    (0x80, Cmd.DUTY_M1, (32768,)),
    (0x80, Cmd.DUTY_M1, (-32768,)),
    (0x80, Cmd.DUTY_M1, (1.5,)),
    (0x80, Cmd.DUTY_M1, (True,)),
    (0x80, Cmd.SPEED_ACCEL_M1, (-1, 0)),
    (0x80, Cmd.SPEED_ACCEL_M1, (2**32, 0)),
    (0x80, Cmd.SPEED_ACCEL_M1, (0, 2**31)),
    (0x80, Cmd.SPEED_ACCEL_MIXED, (0, 0)),
])
def test_encode_write_rejects_bad_input(address: int, cmd: int, args: tuple) -> None:
    with pytest.raises(RoboClawProtocolError):
        encode_write(address, cmd, *args)


def test_encode_read_rejects_bad_input() -> None:
    for address, cmd in [(0x80, Cmd.DUTY_M1), (0x88, Cmd.READ_TEMP), (0x80, 200)]:
        with pytest.raises(RoboClawProtocolError):
            encode_read(address, cmd)


def test_reply_lengths() -> None:
    assert reply_length(Cmd.READ_ENC_M1) == 7
    assert reply_length(Cmd.READ_SPEED_M2) == 7
    assert reply_length(Cmd.READ_MAIN_BATTERY) == 4
    assert reply_length(Cmd.READ_CURRENTS) == 6
    assert reply_length(Cmd.READ_TEMP) == 4
    assert reply_length(Cmd.READ_STATUS) == 6
    assert reply_length(Cmd.READ_ENCODERS) == 10
    assert reply_length(Cmd.READ_SPEEDS) == 10
    assert reply_length(Cmd.READ_VERSION) is None
    assert reply_length(Cmd.SPEED_ACCEL_MIXED) == 1


# -- device-side replies, byte-exact, and decoding -------------------------------------------

VERSION = "RoboClaw 2x15A v4.2.8\n"


@pytest.mark.parametrize(("cmd", "values", "expected", "decoded"), [
    (Cmd.READ_ENC_M1, (-5, 2), "fffffffb 02 806b", EncoderReading(-5, 2)),
    (Cmd.READ_SPEED_M1, (-300,), "fffffed4 01 1aa0", SpeedReading(-300, 1)),
    (Cmd.READ_ENCODERS, (-5, 70000), "fffffffb 00011170 0757", PairReading(-5, 70000)),
    (Cmd.READ_SPEEDS, (1500, -300), "000005dc fffffed4 693e", PairReading(1500, -300)),
    (Cmd.READ_MAIN_BATTERY, (28.4,), "011c d776", 28.4),
    (Cmd.READ_CURRENTS, (1.23, -0.5), "007b ffce 611b", Currents(1.23, -0.5)),
    (Cmd.READ_TEMP, (25.1,), "00fb b3e2", 25.1),
    (Cmd.READ_STATUS, (0x00010002,), "00010002 90ce",
     Status(ErrorFlag.TEMP, WarnFlag.OVERCURRENTM1)),
    (Cmd.READ_VERSION, (VERSION,), VERSION.encode().hex() + "00 ab25", VERSION),
    (Cmd.READ_SERIAL_TIMEOUT, (0.3,), "03" + f"{crc16(h('800f03')):04x}", 0.3),
])
def test_encode_reply_bytes_and_decode(cmd: Cmd, values: tuple, expected: str,
                                       decoded: object) -> None:
    reply = encode_reply(0x80, cmd, *values)
    assert reply == h(expected)
    assert decode_reply(0x80, cmd, reply) == decoded


def test_status_value_round_trip() -> None:
    status = Status.from_value(0x0003_4001)
    assert status.errors == ErrorFlag.ESTOP | ErrorFlag.MBATLOW
    assert status.warnings == WarnFlag.OVERCURRENTM1 | WarnFlag.OVERCURRENTM2
    assert status.value == 0x0003_4001
    assert encode_reply(0x80, Cmd.READ_STATUS, status) == encode_reply(
        0x80, Cmd.READ_STATUS, 0x0003_4001)


def test_decode_reply_checks_crc_address_and_length() -> None:
    reply = encode_reply(0x80, Cmd.READ_TEMP, 30.0)
    for address, data in [
        (0x81, reply),  # CRC covers the address
        (0x80, reply[:-1] + bytes((reply[-1] ^ 1,))),
        (0x80, reply[:-1]),
        (0x80, reply + b"\0"),
        (0x80, b""),
    ]:
        with pytest.raises(RoboClawProtocolError):
            decode_reply(address, Cmd.READ_TEMP, data)
    with pytest.raises(RoboClawProtocolError):  # CRC covers the command
        decode_reply(0x80, Cmd.READ_MAIN_BATTERY, reply)


def test_decode_version_rejects_malformed() -> None:
    def with_crc(payload: bytes) -> bytes:
        return payload + crc16(bytes((0x80, Cmd.READ_VERSION)) + payload).to_bytes(2, "big")

    for payload in [b"no nul", b"a\0b\0", b"x" * 48 + b"\0", b"\0\0"]:
        with pytest.raises(RoboClawProtocolError):
            decode_reply(0x80, Cmd.READ_VERSION, with_crc(payload))
    assert decode_reply(0x80, Cmd.READ_VERSION, with_crc(b"x" * 47 + b"\0")) == "x" * 47


@pytest.mark.parametrize(("cmd", "values"), [
    (Cmd.READ_ENC_M1, (2**31, 0)),
    (Cmd.READ_ENC_M1, (0,)),
    (Cmd.READ_SPEED_M1, (1.5,)),
    (Cmd.READ_MAIN_BATTERY, (-1.0,)),
    (Cmd.READ_MAIN_BATTERY, (float("nan"),)),
    (Cmd.READ_TEMP, (1e308,)),
    (Cmd.READ_CURRENTS, (400.0, 0.0)),
    (Cmd.READ_STATUS, (2**32,)),
    (Cmd.READ_VERSION, ("x" * 48,)),
    (Cmd.READ_VERSION, ("a\0b",)),
    (Cmd.READ_VERSION, ("température",)),
    (Cmd.DUTY_M1, (0,)),
])
def test_encode_reply_rejects_bad_values(cmd: int, values: tuple) -> None:
    with pytest.raises(RoboClawProtocolError):
        encode_reply(0x80, cmd, *values)


# -- round trips of random valid values ------------------------------------------------------

@given(addresses, st.sampled_from([Cmd.READ_ENC_M1, Cmd.READ_ENC_M2]), s32,
       st.integers(0, 255))
def test_round_trip_encoder(address: int, cmd: Cmd, count: int, status: int) -> None:
    reply = encode_reply(address, cmd, count, status)
    assert decode_reply(address, cmd, reply) == EncoderReading(count, status)


@given(addresses, st.sampled_from([Cmd.READ_SPEED_M1, Cmd.READ_SPEED_M2]), s32)
def test_round_trip_speed(address: int, cmd: Cmd, speed: int) -> None:
    reading = decode_reply(address, cmd, encode_reply(address, cmd, speed))
    assert reading == SpeedReading(speed, 1 if speed < 0 else 0)


@given(addresses, st.sampled_from([Cmd.READ_MAIN_BATTERY, Cmd.READ_TEMP]),
       st.integers(0, 0xFFFF))
def test_round_trip_tenths(address: int, cmd: Cmd, tenths: int) -> None:
    value = decode_reply(address, cmd, encode_reply(address, cmd, tenths / 10))
    assert round(value * 10) == tenths


@given(addresses, st.integers(-0x8000, 0x7FFF), st.integers(-0x8000, 0x7FFF))
def test_round_trip_currents(address: int, c1: int, c2: int) -> None:
    reply = encode_reply(address, Cmd.READ_CURRENTS, c1 / 100, c2 / 100)
    currents = decode_reply(address, Cmd.READ_CURRENTS, reply)
    assert (round(currents.m1_a * 100), round(currents.m2_a * 100)) == (c1, c2)


@given(addresses, u32)
def test_round_trip_status(address: int, value: int) -> None:
    assert decode_reply(address, Cmd.READ_STATUS,
                        encode_reply(address, Cmd.READ_STATUS, value)).value == value


@given(addresses, st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=47))
def test_round_trip_version(address: int, text: str) -> None:
    reply = encode_reply(address, Cmd.READ_VERSION, text)
    assert decode_reply(address, Cmd.READ_VERSION, reply) == text


write_requests = st.one_of(
    st.tuples(st.just(Cmd.RESET_ENC), st.just(())),
    st.tuples(st.sampled_from([Cmd.DUTY_M1, Cmd.DUTY_M2]),
              st.tuples(st.integers(-32767, 32767))),
    st.tuples(st.sampled_from([Cmd.SPEED_ACCEL_M1, Cmd.SPEED_ACCEL_M2]), st.tuples(u32, s32)),
    st.tuples(st.just(Cmd.SPEED_ACCEL_MIXED), st.tuples(u32, s32, s32)),
)


@given(addresses, write_requests)
def test_round_trip_write_through_parser(address: int, request: tuple) -> None:
    cmd, args = request
    raw = encode_write(address, cmd, *args)
    assert RequestParser().feed(raw, 0.0) == [Request(address, cmd, args, raw)]


# -- request parser --------------------------------------------------------------------------

def test_parser_read_and_write() -> None:
    write = encode_write(0x81, Cmd.SPEED_ACCEL_MIXED, 1000, 200, -200)
    got = RequestParser().feed(b"\x80\x10" + write, 0.0)
    assert got == [
        Request(0x80, Cmd.READ_ENC_M1, (), b"\x80\x10"),
        Request(0x81, Cmd.SPEED_ACCEL_MIXED, (1000, 200, -200), write),
    ]


def test_parser_split_packets() -> None:
    write = encode_write(0x80, Cmd.SPEED_ACCEL_M1, 500, -77)
    parser = RequestParser()
    got = []
    for i, byte in enumerate(write + b"\x82\x15"):
        got += parser.feed(bytes((byte,)), i * 0.001)
    assert [(r.address, r.cmd, r.args) for r in got] == [
        (0x80, Cmd.SPEED_ACCEL_M1, (500, -77)), (0x82, Cmd.READ_VERSION, ())]


def test_parser_skips_garbage_before_and_between_packets() -> None:
    write = encode_write(0x80, Cmd.DUTY_M2, -100)
    stream = b"\x00\x7f\xff\x10" + write + b"\x01\x02\x88" + b"\x80\x99" + b"\x81\x5a"
    got = RequestParser().feed(stream, 0.0)
    assert [(r.address, r.cmd, r.args) for r in got] == [
        (0x80, Cmd.DUTY_M2, (-100,)), (0x81, Cmd.READ_STATUS, ())]


def test_parser_unknown_command_byte_may_start_next_packet() -> None:
    got = RequestParser().feed(b"\x80\x81\x12", 0.0)
    assert [(r.address, r.cmd) for r in got] == [(0x81, Cmd.READ_SPEED_M1)]


def test_parser_drops_partial_packet_after_gap() -> None:
    write = encode_write(0x80, Cmd.DUTY_M1, 1234)
    parser = RequestParser()
    assert parser.feed(write[:3], 1.000) == []
    # 20 ms later the firmware has forgotten the partial packet; the rest is garbage
    assert parser.feed(write[3:], 1.020) == []
    assert parser.feed(write, 1.021) == [Request(0x80, Cmd.DUTY_M1, (1234,), write)]


def test_parser_keeps_partial_packet_within_gap() -> None:
    write = encode_write(0x80, Cmd.DUTY_M1, 1234)
    parser = RequestParser()
    assert parser.feed(write[:3], 1.000) == []
    assert parser.feed(write[3:], 1.009) == [Request(0x80, Cmd.DUTY_M1, (1234,), write)]


def test_parser_reports_bad_crc_write_as_rejected() -> None:
    write = bytearray(encode_write(0x80, Cmd.DUTY_M1, 1234))
    write[-1] ^= 0x01
    parser = RequestParser()
    (request,) = parser.feed(bytes(write), 0.0)
    assert request.rejected and request.cmd is Cmd.DUTY_M1 and request.raw == bytes(write)
    assert parser.feed(b"\x80\x18", 0.0) == [Request(0x80, Cmd.READ_MAIN_BATTERY, (), b"\x80\x18")]


# -- fuzzing ---------------------------------------------------------------------------------

@settings(max_examples=400)
@given(addresses, st.sampled_from(list(Cmd) + [0, 7, 255]), st.binary(max_size=60))
def test_fuzz_decode_reply_raises_only_protocol_error(address: int, cmd: int,
                                                      data: bytes) -> None:
    try:
        decode_reply(address, cmd, data)
    except RoboClawProtocolError:
        pass


@settings(max_examples=200)
@given(addresses, st.sampled_from(READS), st.binary(min_size=1, max_size=50))
def test_fuzz_decode_reply_with_valid_crc(address: int, cmd: Cmd, payload: bytes) -> None:
    data = payload + crc16(bytes((address, cmd)) + payload).to_bytes(2, "big")
    try:
        decode_reply(address, cmd, data)
    except RoboClawProtocolError:
        pass


chunks = st.lists(st.tuples(st.binary(max_size=40), st.floats(0, 0.03)), max_size=20)


@settings(max_examples=300)
@given(chunks)
def test_fuzz_parser_never_raises_and_yields_consistent_requests(feed: list) -> None:
    parser, now = RequestParser(), 0.0
    for data, gap in feed:
        now += gap
        for request in parser.feed(data, now):
            assert 0x80 <= request.address <= 0x87
            assert request.raw[:2] == bytes((request.address, request.cmd))
            assert len(request.raw) == rc.request_length(request.cmd)
            if rc.is_write(request.cmd):
                crc_ok = crc16(request.raw[:-2]) == int.from_bytes(request.raw[-2:], "big")
                assert request.crc_ok == crc_ok
                assert len(request.args) == (len(rc.WRITE_ARGS[request.cmd]) if crc_ok else 0)


@settings(max_examples=200)
@given(st.binary(max_size=30), addresses, write_requests, st.binary(max_size=30))
def test_fuzz_valid_packet_survives_garbage_after_a_gap(before: bytes, address: int,
                                                        request: tuple, after: bytes) -> None:
    cmd, args = request
    raw = encode_write(address, cmd, *args)
    parser = RequestParser()
    parser.feed(before, 0.0)
    got = parser.feed(raw, 0.5)  # the gap drops any partial packet left by the garbage
    assert got[0] == Request(address, cmd, args, raw)
    parser.feed(after, 0.5)


# -- serial timeout (commands 14 and 15) -----------------------------------------------------

def test_set_serial_timeout_is_one_byte_of_tenths() -> None:
    packet = encode_write(0x80, Cmd.SET_SERIAL_TIMEOUT, 3)
    assert packet[:3] == h("80 0e 03") and len(packet) == 5
    assert packet[3:] == crc16(packet[:3]).to_bytes(2, "big")
    assert rc.request_length(Cmd.SET_SERIAL_TIMEOUT) == 5
    assert reply_length(Cmd.SET_SERIAL_TIMEOUT) == 1
    assert encode_read(0x81, Cmd.READ_SERIAL_TIMEOUT) == h("81 0f")
    assert reply_length(Cmd.READ_SERIAL_TIMEOUT) == 3
    with pytest.raises(RoboClawProtocolError):
        encode_write(0x80, Cmd.SET_SERIAL_TIMEOUT, 256)
    (request,) = RequestParser().feed(packet, 0.0)
    assert request.cmd is Cmd.SET_SERIAL_TIMEOUT and request.args == (3,)


@pytest.mark.parametrize(("seconds", "tenths"), [(0.3, 3), (0.7, 7), (0.29999, 3), (0, 0),
                                                 (25.5, 255), (1, 10)])
def test_serial_timeout_tenths_rounds(seconds: float, tenths: int) -> None:
    assert rc.serial_timeout_tenths(seconds) == tenths


@pytest.mark.parametrize("seconds", [-0.1, 25.6, float("nan"), float("inf"), True, "1"])
def test_serial_timeout_tenths_rejects(seconds: object) -> None:
    with pytest.raises(RoboClawProtocolError):
        rc.serial_timeout_tenths(seconds)
