"""The argparse types and decoding options shared by transcribe and serve."""

import argparse

import pytest

from sensevoice import argtypes


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="t", exit_on_error=False)
    parser.add_argument("--n", type=argtypes.positive_int)
    parser.add_argument("--seconds", type=argtypes.positive_float)
    argtypes.add_decoding_arguments(parser, scope=", for every request")
    return parser


def test_good_values_parse():
    args = parser().parse_args(["--n", "3", "--seconds", "0.5", "--blank-penalty", "0", "--ban-emo-unk"])
    assert (args.n, args.seconds, args.blank_penalty, args.ban_emo_unk) == (3, 0.5, 0.0, True)
    defaults = parser().parse_args([])
    assert (defaults.blank_penalty, defaults.ban_emo_unk) == (0.0, False)


@pytest.mark.parametrize("argv, message", [
    (["--n", "0"], "expected a positive integer, got '0'"),
    (["--n", "1.5"], "invalid positive_int value: '1.5'"),
    (["--seconds", "-2"], "expected a positive number, got '-2'"),
    (["--seconds", "inf"], "expected a positive number, got 'inf'"),
    (["--blank-penalty", "-0.1"], "expected a number >= 0, got '-0.1'"),
    (["--blank-penalty", "nan"], "expected a number >= 0, got 'nan'"),
])
def test_bad_values_name_the_option(argv, message):
    with pytest.raises(argparse.ArgumentError) as error:
        parser().parse_args(argv)
    assert f"argument {argv[0]}: {message}" == str(error.value)


def test_scope_ends_each_decoding_help_line():
    helps = {action.dest: action.help for action in parser()._actions}
    assert ", for every request:" in helps["blank_penalty"] and ", for every request:" in helps["ban_emo_unk"]
