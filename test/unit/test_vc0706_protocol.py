"""Unit tests and fuzzing of the VC0706 camera codec."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ilrs_robots.protocols import vc0706 as vc
from ilrs_robots.protocols.vc0706 import (
    BAUD_CODES,
    Cmd,
    FbufCtrl,
    MemType,
    Reply,
    ReplyParser,
    RequestParser,
    Status,
    Vc0706ProtocolError,
)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# -- encoders, byte-exact against the datasheet examples --------------------------------------

def test_simple_commands() -> None:
    assert vc.encode_version() == h("56 00 11 00")
    assert vc.encode_reset() == h("56 00 26 00")
    assert vc.encode_fbuf_ctrl(FbufCtrl.STOP_CURRENT) == h("56 00 36 01 00")
    assert vc.encode_fbuf_ctrl(FbufCtrl.RESUME) == h("56 00 36 01 03")
    assert vc.encode_fbuf_ctrl(FbufCtrl.STEP) == h("56 00 36 01 02")
    assert vc.encode_get_fbuf_len() == h("56 00 34 01 00")


def test_read_fbuf() -> None:
    assert vc.encode_read_fbuf(0, 0x20) == h("56 00 32 0C 00 0A 00000000 00000020 000A")
    assert (vc.encode_read_fbuf(0x1234, 0x0800, delay=0x0102)
            == h("56 00 32 0C 00 0A 00001234 00000800 0102"))


def test_sizes_and_data() -> None:
    assert vc.encode_set_size(640, 480) == h("56 00 31 05 04 01 00 19 00")
    assert vc.encode_set_size(320, 240) == h("56 00 31 05 04 01 00 19 11")
    assert vc.encode_set_size(160, 120) == h("56 00 31 05 04 01 00 19 22")
    assert vc.encode_get_size() == h("56 00 30 04 04 01 00 19")
    assert vc.encode_set_compression(0x36) == h("56 00 31 05 01 01 12 04 36")
    with pytest.raises(Vc0706ProtocolError):
        vc.encode_set_size(800, 600)


@pytest.mark.parametrize(("baud", "code"), [(9600, "AE C8"), (19200, "56 E4"),
                                            (38400, "2A F2"), (57600, "1C 4C"),
                                            (115200, "0D A6")])
def test_baud_codes(baud: int, code: str) -> None:
    assert vc.encode_set_baud(baud) == h("56 00 24 03 01") + h(code)
    assert BAUD_CODES[baud] == int.from_bytes(h(code), "big")


@pytest.mark.parametrize("bad", [lambda: vc.encode_set_baud(4800),
                                 lambda: vc.encode_fbuf_ctrl(7),
                                 lambda: vc.encode_read_fbuf(-1, 8),
                                 lambda: vc.encode_read_fbuf(0, 0),
                                 lambda: vc.encode_read_fbuf(0, 1 << 32),
                                 lambda: vc.encode_write_data(9, 0, b"x"),
                                 lambda: vc.encode_read_data(MemType.I2C_EEPROM, 0, 0),
                                 lambda: vc.encode_command(0x11, bytes(256)),
                                 lambda: vc.encode_command(True, b"")])
def test_encoders_reject_bad_input(bad) -> None:
    with pytest.raises(Vc0706ProtocolError):
        bad()


def test_device_replies() -> None:
    assert vc.encode_reply(Cmd.FBUF_CTRL) == h("76 00 36 00 00")
    assert vc.encode_reply(Cmd.GET_FBUF_LEN, data=h("00001234")) == h("76 00 34 00 04 00001234")
    assert vc.encode_fbuf_reply(h("FFD8 FFD9")) == h("76 00 32 00 00 FFD8FFD9 76 00 32 00 00")


# -- reply parser -----------------------------------------------------------------------------

def test_version_reply() -> None:
    parser = ReplyParser(Cmd.GEN_VERSION)
    reply = parser.feed(h("76 00 11 00 0B") + b"VC0703 1.00")
    assert reply == Reply(0, Cmd.GEN_VERSION, 0, b"VC0703 1.00")
    assert vc.decode_version(reply) == "VC0703 1.00"


def test_reply_split_byte_by_byte_after_garbage() -> None:
    raw = b"\x76\x00\x99junk\x76" + h("76 00 34 00 04 00 00 4E 20") + b"tail"
    parser = ReplyParser(Cmd.GET_FBUF_LEN, data_length=4)
    replies = [parser.feed(bytes((b,))) for b in raw]
    first = next(i for i, r in enumerate(replies) if r is not None)
    assert first == len(raw) - 5
    assert vc.decode_fbuf_len(replies[-1]) == 20000
    assert parser.skipped == 8
    assert parser.remainder == b"tail"


def test_fbuf_reply_with_trailer_split_across_reads() -> None:
    data = bytes(range(256)) * 2 + h("76 00 32 00 00")  # header pattern inside the image
    raw = b"\x00\x76" + vc.encode_fbuf_reply(data)
    parser = ReplyParser(Cmd.READ_FBUF, fbuf_length=len(data))
    assert parser.feed(raw[:7]) is None
    assert parser.feed(raw[7:300]) is None
    assert parser.feed(raw[300:-1]) is None
    assert parser.finish() is None  # quiet, but the data is not complete: not a short read
    reply = parser.feed(raw[-1:])
    assert reply is not None and reply.data == data and parser.skipped == 2


def test_fbuf_trailer_mismatch_raises() -> None:
    raw = bytearray(vc.encode_fbuf_reply(b"\xff\xd8abc\xff\xd9"))
    raw[-1] ^= 0xA5
    with pytest.raises(Vc0706ProtocolError, match="trailer"):
        ReplyParser(Cmd.READ_FBUF, fbuf_length=7).feed(bytes(raw))


def test_short_fbuf_reply_accepted_when_quiet() -> None:
    parser = ReplyParser(Cmd.READ_FBUF, fbuf_length=64)
    assert parser.feed(vc.encode_fbuf_reply(b"0123456789")) is None
    reply = parser.finish()
    assert reply is not None and reply.data == b"0123456789"


def test_error_status_and_corrupt_header() -> None:
    reply = ReplyParser(Cmd.READ_FBUF, fbuf_length=8).feed(h("76 00 32 04 00"))
    assert reply is not None and reply.status == Status.CANNOT_EXECUTE and not reply.ok
    with pytest.raises(Vc0706ProtocolError, match="status"):
        ReplyParser(Cmd.FBUF_CTRL, data_length=0).feed(h("76 00 36 A5 00"))
    with pytest.raises(Vc0706ProtocolError, match="length"):
        ReplyParser(Cmd.GET_FBUF_LEN, data_length=4).feed(h("76 00 34 00 03 000000"))


def test_reply_for_other_command_or_serial_is_skipped() -> None:
    parser = ReplyParser(Cmd.FBUF_CTRL, data_length=0)
    assert parser.feed(h("76 00 11 00 00") + h("76 01 36 00 00")) is None
    assert parser.feed(h("76 00 36 00 00")) == Reply(0, Cmd.FBUF_CTRL, 0, b"")


# -- request parser (camera side) -------------------------------------------------------------

def test_request_parser_round_trip_with_garbage() -> None:
    parser = RequestParser()
    wire = b"\x00\x13" + vc.encode_read_fbuf(8, 16) + b"\xaa" + vc.encode_version()
    requests = [r for b in wire for r in parser.feed(bytes((b,)), 0.0)]
    assert [r.cmd for r in requests] == [Cmd.READ_FBUF, Cmd.GEN_VERSION]
    args = vc.decode_read_fbuf_args(requests[0].args)
    assert (args.address, args.length, args.delay, args.mode) == (8, 16, 10, 0x0A)
    assert parser.discarded == 3


def test_request_parser_drops_stale_partial_request() -> None:
    parser = RequestParser(packet_timeout=0.01)
    assert parser.feed(b"\x56\x00\x32\x0c", 0.0) == []
    requests = parser.feed(vc.encode_version(), 1.0)
    assert [r.cmd for r in requests] == [Cmd.GEN_VERSION]


def test_data_args() -> None:
    req = vc.encode_set_size(320, 240)
    args = vc.decode_data_args(Cmd.WRITE_DATA, req[4:])
    assert args == vc.DataArgs(MemType.I2C_EEPROM, 1, 0x19, b"\x11")
    with pytest.raises(Vc0706ProtocolError):
        vc.decode_data_args(Cmd.WRITE_DATA, req[4:-1])


# -- properties and fuzzing -------------------------------------------------------------------

@given(st.binary(min_size=1, max_size=300), st.binary(max_size=40),
       st.lists(st.integers(1, 50), max_size=20))
def test_fbuf_round_trip_any_split(data: bytes, garbage: bytes, cuts: list[int]) -> None:
    garbage = garbage.replace(b"\x76", b"")
    raw = garbage + vc.encode_fbuf_reply(data)
    parser = ReplyParser(Cmd.READ_FBUF, fbuf_length=len(data))
    reply, pos = None, 0
    for cut in cuts + [len(raw)]:
        chunk, pos = raw[pos:pos + cut], pos + cut
        reply = parser.feed(chunk) or reply
    reply = parser.feed(raw[pos:]) or reply
    assert reply is not None and reply.data == data and parser.skipped == len(garbage)


@given(st.sampled_from(list(Cmd)), st.binary(max_size=30))
def test_request_round_trip(cmd: Cmd, args: bytes) -> None:
    assert RequestParser().feed(vc.encode_command(cmd, args), 0.0)[0].args == args


@settings(max_examples=400)
@given(st.sampled_from(list(Cmd) + [0x00, 0x76, 0xFF]), st.integers(0, 8),
       st.sampled_from([None, 0, 1, 4]), st.lists(st.binary(max_size=40), max_size=8))
def test_reply_parser_fuzz_raises_only_protocol_error(cmd: int, fbuf: int,
                                                      data_length: int | None,
                                                      chunks: list[bytes]) -> None:
    try:
        parser = ReplyParser(cmd, data_length=data_length, fbuf_length=fbuf or None)
        for chunk in chunks:
            parser.feed(chunk)
        parser.finish()
    except Vc0706ProtocolError:
        pass


@settings(max_examples=300)
@given(st.binary(max_size=200), st.sampled_from([None, Cmd.READ_FBUF, Cmd.READ_DATA]))
def test_device_decoders_fuzz(args: bytes, cmd: Cmd | None) -> None:
    for call in (lambda: vc.decode_read_fbuf_args(args),
                 lambda: vc.decode_data_args(cmd or 0, args),
                 lambda: RequestParser().feed(args, 0.0),
                 lambda: vc.decode_fbuf_len(Reply(0, Cmd.GET_FBUF_LEN, 0, args[:6])),
                 lambda: vc.decode_version(Reply(0, cmd or 0x11, args[0] if args else 0,
                                                 args))):
        try:
            call()
        except Vc0706ProtocolError:
            pass


# -- the JPEG check ---------------------------------------------------------------------------

def _jpeg(shape: tuple[int, ...], quality: int = 80, extra: tuple = ()) -> bytes:
    import cv2
    import numpy as np

    rng = np.random.default_rng(sum(shape) + quality)
    img = cv2.GaussianBlur(rng.integers(0, 255, shape, dtype=np.uint8), (7, 7), 0)
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality, *extra])
    assert ok
    return buf.tobytes()


@pytest.mark.parametrize("shape", [(480, 640, 3), (240, 320, 3), (61, 83, 3), (50, 70)])
@pytest.mark.parametrize("quality", [5, 50, 95])
def test_check_jpeg_accepts_what_libjpeg_writes(shape, quality) -> None:
    import cv2

    assert vc.check_jpeg(_jpeg(shape, quality)) == (shape[1], shape[0])
    restarts = _jpeg(shape, quality, (cv2.IMWRITE_JPEG_RST_INTERVAL, 3))
    assert b"\xff\xd0" in restarts and vc.check_jpeg(restarts) == (shape[1], shape[0])


def test_check_jpeg_names_broken_structure() -> None:
    good = _jpeg((120, 160, 3))
    for bad, why in [(good[2:], "SOI"), (good[:-2], "EOI"), (good[:300] + good[-2:], None),
                     (good[:2] + b"\x00" + good[2:], "marker")]:
        with pytest.raises(vc.JpegError, match=why):
            vc.check_jpeg(bad)


def test_check_jpeg_follows_the_scan_to_its_last_block() -> None:
    """What libjpeg reports as "Corrupt JPEG data" (scan data ending early, bytes left over,
    a marker inside the scan) is refused; a changed length is caught by the block count."""
    good = _jpeg((240, 320, 3), 60)
    scan = good.rindex(b"\xff\xda") + 14
    for bad, why in [(good[:-200] + good[-2:], "early|decode"),
                     (good[:-2] + bytes(40) + good[-2:], "left over|range|decode"),
                     (good[:scan + 50] + b"\xff\xc4" + good[scan + 50:], "marker inside"),
                     (good[:scan + 30] + good[scan + 1030:], "")]:
        with pytest.raises(vc.JpegError, match=why or None):
            vc.check_jpeg(bad)


@given(st.binary(max_size=400))
@settings(max_examples=200, deadline=None)
def test_check_jpeg_raises_only_jpeg_errors(data: bytes) -> None:
    for blob in (data, b"\xff\xd8" + data + b"\xff\xd9"):
        try:
            vc.check_jpeg(blob)
        except vc.JpegError:
            pass
