"""The command line's contract: no command prints help and fails."""

from rotator import cli


def test_no_command_prints_help_and_fails(capsys) -> None:
    assert cli.main([]) == 2
    assert "usage: rotator" in capsys.readouterr().out
