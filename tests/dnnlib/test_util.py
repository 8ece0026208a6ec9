"""Tests for the framework-free helpers."""

import argparse
import os

import pytest

from dnnlib import util


def test_parse_range():
    assert util.parse_range("0-3,7") == [0, 1, 2, 3, 7]
    assert util.parse_range("5") == [5]
    for bad in ("1-x", "5-2", "", "a"):
        with pytest.raises(util.UserError):
            util.parse_range(bad)


def test_format_time():
    assert util.format_time(12) == "12s"
    assert util.format_time(184) == "3m 04s"
    assert util.format_time(3720) == "1h 02m"
    assert util.format_time(90000) == "1d 01h"


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    path = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with util.atomic_write(path) as f:
            f.write(b"half")
            raise RuntimeError("interrupted")
    assert os.listdir(tmp_path) == []
    with util.atomic_write(path) as f:
        f.write(b"whole")
    assert path.read_bytes() == b"whole"
    assert os.listdir(tmp_path) == ["out.bin"]
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask


def test_next_run_dir_numbers_runs(tmp_path):
    a = util.next_run_dir(str(tmp_path), "cfg-1gpu")
    b = util.next_run_dir(str(tmp_path), "cfg-1gpu")
    assert os.path.basename(a) == "00000-cfg-1gpu"
    assert os.path.basename(b) == "00001-cfg-1gpu"
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(util.UserError, match="cannot create outdir"):
        util.next_run_dir(str(blocker / "runs"), "x")


def test_argparse_types():
    assert util.arg_bool("on") is True and util.arg_bool("0") is False
    with pytest.raises(argparse.ArgumentTypeError):
        util.arg_bool("maybe")
    assert util.arg_positive(float)("0.5") == 0.5
    with pytest.raises(argparse.ArgumentTypeError, match="positive"):
        util.arg_positive(int)("0")
    with pytest.raises(argparse.ArgumentTypeError, match="whole number"):
        util.arg_positive(int)("1.5")


def test_progress_prints_rate_and_eta(capsys):
    import sys

    bar = util.Progress(4, desc="work", every=0.0, file=sys.stdout)
    for _ in range(4):
        bar.update()
    out = capsys.readouterr().out
    assert "4/4" in out and "img/s" in out and "ETA" in out


def test_logger_tees_to_file(tmp_path, capsys):
    path = tmp_path / "log.txt"
    with util.Logger(str(path)):
        print("hello log")
    assert "hello log" in path.read_text()
    assert "hello log" in capsys.readouterr().out


def test_run_cli_turns_user_error_into_exit_2(capsys):
    def main(argv):
        raise util.UserError("bad thing happened")

    with pytest.raises(SystemExit) as e:
        util.run_cli(main, [])
    assert e.value.code == 2
    assert "error: bad thing happened" in capsys.readouterr().err


def test_run_cli_folds_a_multi_line_message_onto_one_line(capsys):
    def main(argv):
        raise util.UserError(
            "file is corrupt (pickle said:\n  no persistent_load)"
        )

    with pytest.raises(SystemExit):
        util.run_cli(main, [])
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "(pickle said: no persistent_load)" in err


def test_parse_range_refuses_absurd_counts():
    assert len(util.parse_range("0-99999")) == 100_000
    with pytest.raises(util.UserError, match="at most 100,000"):
        util.parse_range("0-999999999")
    with pytest.raises(util.UserError, match="at most 100,000"):
        util.parse_range("0-60000,70000-130000")


def test_quiet_framework_logs_keeps_what_the_user_set():
    environ = {"TF_CPP_MIN_LOG_LEVEL": "0"}
    util.quiet_framework_logs(environ=environ)
    assert environ == {**util.QUIET_LOG_ENV, "TF_CPP_MIN_LOG_LEVEL": "0"}
    environ = {}
    util.quiet_framework_logs(environ=environ)
    assert environ == util.QUIET_LOG_ENV
    environ = {}
    util.quiet_framework_logs(verbose=True, environ=environ)
    assert environ == {}


def test_verbose_flag():
    parser = argparse.ArgumentParser()
    util.add_verbose_flag(parser)
    assert parser.parse_args(["--verbose"]).verbose is True
    assert parser.parse_args([]).verbose is False


def test_filtered_stderr_drops_only_start_up_lines(capfd):
    """What TensorFlow writes while it loads (C++ writes to fd 2) goes; a
    warning or traceback written meanwhile stays."""
    lines = [
        b"WARNING: All log messages before absl::InitializeLog() is called "
        b"are written to STDERR\n",
        b"I0000 00:00:1796645106.12 2896 port.cc:153] oneDNN custom "
        b"operations are on. You may see slightly different results.\n",
        b"E0000 00:00:1796645106.15 2896 cuda_dnn.cc:8579] Unable to "
        b"register cuDNN factory\n",
        b"a library's warning\n",
    ]
    with util.filtered_stderr(util.STARTUP_LINE.search):
        for line in lines:
            os.write(2, line)
    assert capfd.readouterr().err == "a library's warning\n"
