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
    (["--n", "1.5"], "expected a positive integer, got '1.5'"),
    (["--seconds", "-2"], "expected a positive number, got '-2'"),
    (["--seconds", "inf"], "expected a positive number, got 'inf'"),
    (["--blank-penalty", "-0.1"], "expected a number >= 0, got '-0.1'"),
    (["--blank-penalty", "nan"], "expected a number >= 0, got 'nan'"),
    # the ranges and choices are model.DecodingOptions' declared ones, the same in every door
    (["--beam-size", "0"], "expected an integer from 1 to 64, got '0'"),
    (["--beam-size", "65"], "expected an integer from 1 to 64, got '65'"),
    (["--tag-topk", "13"], "expected an integer from 0 to 12, got '13'"),
    (["--hotword-weight", "-1"], "expected a number >= 0, got '-1'"),
    (["--language", "fr"], "expected one of auto, zh, en, yue, ja, ko, nospeech (or zn), got 'fr'"),
])
def test_bad_values_name_the_option(argv, message):
    with pytest.raises(argparse.ArgumentError) as error:
        parser().parse_args(argv)
    assert f"argument {argv[0]}: {message}" == str(error.value)


def test_scope_ends_each_decoding_help_line():
    helps = {action.dest: action.help for action in parser()._actions}
    assert ", for every request:" in helps["blank_penalty"] and ", for every request:" in helps["ban_emo_unk"]


def test_every_declared_option_is_a_flag_with_its_declared_default():
    """The flags are generated from model.DecodingOptions' fields: each field the doors take is one, by its
    declared spelling, with the type's default (ITN: the command line's own default, on)."""
    from sensevoice import optionspec

    actions = {action.dest: action for action in parser()._actions}
    for option in optionspec.declared():
        if not option.exposed:
            assert option.name not in actions
            continue
        action = actions[option.name]
        assert action.option_strings[0] == option.spelled("cli")
        expected = {"textnorm": True, "hotwords": None}.get(option.name, option.default)
        assert action.default == expected, option.name
