"""`ilrs`: a Ctrl-C that comes while a command cleans up after the first one."""

from __future__ import annotations

import argparse

from ilrs_robots.runner import cli


def test_a_second_ctrl_c_during_cleanup_ends_with_130_and_no_traceback(
        monkeypatch, capsys) -> None:
    def interrupted_twice(_args) -> int:
        try:
            raise KeyboardInterrupt  # the first: the command starts its cleanup
        except KeyboardInterrupt:
            raise KeyboardInterrupt from None  # the second, inside the cleanup

    parser = cli.build_parser()
    parse = parser.parse_args
    monkeypatch.setattr(parser, "parse_args",
                        lambda argv: argparse.Namespace(**{**vars(parse(argv)),
                                                           "func": interrupted_twice}))
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    assert cli.main(["doctor"]) == 130
    out = capsys.readouterr()
    assert "interrupted" in out.out + out.err and "Traceback" not in out.out + out.err

