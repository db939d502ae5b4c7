"""``epm config show|set|unset`` and what ``epm`` itself does with the file: an invalid file
stops it before anything is opened, and the port, baud rate and practitioner come from a flag,
the environment, the file or the default, in that order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from controller.cli import COMMANDS, build_parser
from controller.config import load_config
from controller.ui.app import create_app, resolve_port
from tests.config.conftest import Run, write


def test_config_is_a_command_and_baud_is_not_given_by_default() -> None:
    assert "config" in COMMANDS
    assert build_parser().parse_args([]).baud is None


# --- show --------------------------------------------------------------------------------------


def test_show_on_a_new_folder_lists_the_defaults_and_creates_nothing(epm: Run, data: Path) -> None:
    code, out, err = epm("config", "show", "--data-dir", str(data))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == (
        f"configuration file: {data / 'config.yaml'} (not written yet: every key has its default)"
    )
    assert lines[1].split() == ["KEY", "FROM", "VALUE"]
    rows = {line.split()[0]: line.split(None, 2)[1:] for line in lines[2:]}
    assert rows == {
        "clinic.name": ["default", '""'],
        "clinic.contact": ["default", '""'],
        "station.name": ["default", '""'],
        "device.port": ["default", '"" (the built-in simulator)'],
        "device.baud": ["default", "115200"],
        "practitioner.default": ["default", '"" (the login name)'],
        "report.paper": ["default", "A4"],
        "server.url": ["default", '""'],
        "server.offline_days": ["default", "7"],
        "station.id": ["records", "none yet (made with the records database) (read-only)"],
    }
    assert not data.exists()


def test_show_says_where_each_value_comes_from(
    epm: Run, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(data, "clinic:\n  name: Clínica Norte\nreport:\n  paper: Letter\n")
    monkeypatch.setenv("EPM_PORT", "/dev/ttyUSB1")
    code, out, _err = epm("config", "show", "--data-dir", str(data))
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == f"configuration file: {path}"
    assert "clinic.name           file     Clínica Norte" in lines
    assert "report.paper          file     Letter" in lines
    assert "device.baud           default  115200" in lines
    assert lines[-1] == (
        "EPM_PORT is set ('/dev/ttyUSB1'): it overrides device.port for epm started from this shell"
    )


def test_show_as_json(epm: Run, data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(data, "device:\n  baud: 9600\n")
    monkeypatch.setenv("EPM_BAUD", "19200")
    code, out, _err = epm("config", "show", "--format", "json", "--data-dir", str(data))
    assert code == 0
    document = json.loads(out)
    assert document["file"] == str(path) and document["exists"] is True
    assert list(document["keys"]) == [
        "clinic.name",
        "clinic.contact",
        "station.name",
        "device.port",
        "device.baud",
        "practitioner.default",
        "report.paper",
        "server.url",
        "server.offline_days",
    ]
    assert document["keys"]["device.baud"] == {
        "value": 9600,
        "source": "file",
        "default": 115200,
        "overridden_by": "EPM_BAUD",
    }
    assert document["keys"]["report.paper"] == {
        "value": "A4",
        "source": "default",
        "default": "A4",
        "overridden_by": None,
    }


# --- set and unset -----------------------------------------------------------------------------


def test_set_then_unset(epm: Run, data: Path) -> None:
    path = data / "config.yaml"
    code, out, err = epm("config", "set", "clinic.name", "Clínica Norte", "--data-dir", str(data))
    assert (code, err) == (0, "")
    assert out == f"clinic.name = Clínica Norte (saved in {path})\n"
    code, out, _err = epm("config", "set", "report.paper", "letter", "--data-dir", str(data))
    assert code == 0 and out == f"report.paper = Letter (saved in {path})\n"
    config = load_config(data)
    assert (config.clinic_name, config.report_paper) == ("Clínica Norte", "Letter")
    code, out, _err = epm("config", "unset", "report.paper", "--data-dir", str(data))
    assert code == 0
    assert out == f"report.paper is not set in {path}: it has its default, A4\n"
    assert load_config(data).source("report.paper") == "default"
    assert load_config(data).clinic_name == "Clínica Norte"


def test_set_notes_an_environment_variable_that_overrides_the_key(
    epm: Run, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EPM_PRACTITIONER", "Someone Else")
    code, _out, err = epm(
        "config", "set", "practitioner.default", "Dana Example", "--data-dir", str(data)
    )
    assert code == 0
    assert err == (
        "note: EPM_PRACTITIONER is set in this shell and overrides practitioner.default for epm "
        "started from it\n"
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ("set", "clinic.nmae", "x"),
            "epm config set: error: unknown key 'clinic.nmae' (did you mean clinic.name?): the "
            "known keys are clinic.name, clinic.contact, station.name, device.port, device.baud, "
            "practitioner.default, report.paper, server.url, server.offline_days\n",
        ),
        (
            ("unset", "mail.server"),
            "epm config unset: error: unknown key 'mail.server': the known keys are clinic.name",
        ),
        (
            ("set", "device.baud", "fast"),
            "epm config set: error: device.baud: 'fast' is not a number: use one of 9600, 19200, "
            "38400, 57600, 115200, 230400, 460800, 921600, e.g. "
            "`epm config set device.baud 115200`\n",
        ),
        (
            ("set", "report.paper", "A3"),
            "epm config set: error: report.paper: 'A3' is not a paper size: use A4 or Letter, "
            "e.g. `epm config set report.paper Letter`\n",
        ),
    ],
)
def test_a_bad_key_or_value_exits_1_with_one_message(
    epm: Run, data: Path, argv: tuple[str, ...], message: str
) -> None:
    code, out, err = epm("config", *argv, "--data-dir", str(data))
    assert (code, out) == (1, "")
    assert err.startswith(message)
    assert "Traceback" not in err
    assert not (data / "config.yaml").exists()


def test_an_invalid_file_exits_1_with_the_located_problem(epm: Run, data: Path) -> None:
    path = write(data, "report:\n  paper: A3\n")
    code, out, err = epm("config", "show", "--data-dir", str(data))
    assert (code, out) == (1, "")
    assert err.splitlines() == [
        f"epm config show: error: the configuration file {path} has 1 problem:",
        f"{path}:2:10: report.paper: 'A3' is not a paper size: use A4 or Letter",
        f"Edit {path} or use `epm config set KEY VALUE` (`epm config show` lists the keys).",
    ]


def test_a_data_folder_that_is_a_file_exits_1(epm: Run, tmp_path: Path) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    code, _out, err = epm("config", "show", "--data-dir", str(not_a_folder))
    assert code == 1
    assert err.startswith("epm config show: error:") and "is a file, not a folder" in err


def test_a_symlinked_file_exits_1_and_is_left_alone(epm: Run, data: Path, tmp_path: Path) -> None:
    target = tmp_path / "shared.yaml"
    target.write_text("")
    data.mkdir()
    (data / "config.yaml").symlink_to(target)
    code, _out, err = epm("config", "set", "clinic.name", "x", "--data-dir", str(data))
    assert code == 1 and "is a symbolic link" in err
    assert target.read_text() == ""


@pytest.mark.parametrize(
    "argv",
    [
        ("config",),
        ("config", "bogus"),
        ("config", "set", "clinic.name"),
        ("config", "unset"),
        ("config", "show", "--format", "xml"),
    ],
)
def test_usage_errors_exit_2(epm: Run, argv: tuple[str, ...]) -> None:
    code, out, err = epm(*argv)
    assert (code, out) == (2, "")
    assert "usage: epm config" in err


# --- epm itself ----------------------------------------------------------------------------------


def test_epm_does_not_start_with_an_invalid_configuration_file(epm: Run, data: Path) -> None:
    path = write(data, "device:\n  port: /dev/ttyUSB0\n  baud: 1200\n")
    code, out, err = epm("--data-dir", str(data))
    assert (code, out) == (1, "")
    lines = err.splitlines()
    assert lines[0] == f"epm: cannot start: the configuration file {path} has 1 problem:"
    assert lines[1].startswith(
        f"{path}:3:9: device.baud: 1200 is not a baud rate the EPM-1 link runs at"
    )
    assert lines[2].startswith(f"Edit {path} or use `epm config set KEY VALUE`")
    assert sorted(p.name for p in data.iterdir()) == ["config.yaml"]  # no records opened


def test_epm_does_not_start_with_a_bad_epm_baud(
    epm: Run, data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EPM_BAUD", "fast")
    code, _out, err = epm("--data-dir", str(data))
    assert code == 1
    assert err.startswith("epm: cannot start: EPM_BAUD (which overrides device.baud): 'fast'")
    assert not data.exists()


def test_resolve_port_takes_the_file_after_the_flag_and_epm_port(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(data, "device:\n  port: socket://localhost:7000\n")
    config = load_config(data)
    assert resolve_port(None, config=config) == "socket://localhost:7000"
    monkeypatch.setenv("EPM_PORT", "/dev/ttyUSB1")
    assert resolve_port(None, config=config) == "/dev/ttyUSB1"
    assert resolve_port("/dev/ttyUSB2", config=config) == "/dev/ttyUSB2"
    monkeypatch.delenv("EPM_PORT")
    assert resolve_port(None, 10) == "sim://?speed=10"  # nothing configured


def test_create_app_takes_port_baud_and_practitioner_from_the_file(
    data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(
        data,
        "device:\n  port: socket://localhost:7000\n  baud: 9600\n"
        "practitioner:\n  default: Dana Example\n",
    )
    app = create_app(data_dir=data, connect_on_start=False)
    try:
        assert app.device is not None
        assert (app.device.url, app.device.baud) == ("socket://localhost:7000", 9600)
        assert app.practitioner == "Dana Example"
        assert not app.simulated
    finally:
        app.close_resources()
    monkeypatch.setenv("EPM_BAUD", "19200")
    monkeypatch.setenv("EPM_PRACTITIONER", "Env Name")
    app = create_app(data_dir=data, port="sim://", practitioner=None, connect_on_start=False)
    try:
        assert app.device is not None
        assert (app.device.url, app.device.baud) == ("sim://", 19200)  # flag, then environment
        assert app.practitioner == "Env Name"
    finally:
        app.close_resources()
    app = create_app(data_dir=data, baud=57600, practitioner="Flag Name", connect_on_start=False)
    try:
        assert app.device is not None
        assert app.device.baud == 57600 and app.practitioner == "Flag Name"
    finally:
        app.close_resources()


def test_max_offline_days_takes_a_number_of_days(epm: Run, data: Path) -> None:
    assert epm("config", "set", "server.offline_days", "3", "--data-dir", str(data))[0] == 0
    code, out, _ = epm("config", "show", "--data-dir", str(data))
    assert any(
        line.split()[:3] == ["server.offline_days", "file", "3"] for line in out.splitlines()
    )
    for bad in ("0", "400", "three", "-1"):
        code, _, err = epm("config", "set", "server.offline_days", bad, "--data-dir", str(data))
        assert code != 0 and "1 to 365" in err, (bad, err)
