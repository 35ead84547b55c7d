import pytest

from qa_assistant.errors import UserError, closest, run_script


def test_run_script_exits_with_mains_status() -> None:
    with pytest.raises(SystemExit) as exit_info:
        run_script(lambda: 3)
    assert exit_info.value.code == 3


def test_run_script_turns_a_user_error_into_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    def main() -> int:
        raise UserError("data file 'x.csv' does not exist; expected a CSV file")

    with pytest.raises(SystemExit) as exit_info:
        run_script(main)
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "error: data file 'x.csv' does not exist; expected a CSV file\n"


def test_run_script_lets_bugs_raise() -> None:
    def main() -> int:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        run_script(main)


def test_closest_suggests_only_near_names() -> None:
    assert closest("gur", ["gru", "lstm"]) == " (did you mean 'gru'?)"
    assert closest("xyz", ["gru", "lstm"]) == ""
