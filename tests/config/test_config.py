"""``controller.config``: the settings file in the data folder, its located errors, ``set`` and
``unset`` keeping comments, the file's mode and links, and which value wins (flag, environment,
file, default)."""

from __future__ import annotations

import dataclasses
import os
import stat
from pathlib import Path

import pytest

from controller.config import (
    BAUD_RATES,
    KEYS,
    Config,
    ConfigError,
    config_path,
    effective,
    key_spec,
    load_config,
    resolve,
    set_value,
    unset_value,
)
from tests.config.conftest import write

ROOT = Path(__file__).resolve().parents[2]
KNOWN = (
    "clinic.name, clinic.contact, station.name, device.port, device.baud, "
    "practitioner.default, report.paper, server.url, server.offline_days"
)


def problem_lines(exc: ConfigError) -> list[str]:
    return [problem.format() for problem in exc.problems]


# --- the key table ----------------------------------------------------------------------------


def test_the_key_table_and_the_config_attributes_match() -> None:
    fields = {f.name for f in dataclasses.fields(Config)} - {"path", "in_file"}
    assert fields == {key.attr for key in KEYS}
    assert ", ".join(key.name for key in KEYS) == KNOWN
    defaults = Config.defaults()
    assert [defaults.get(key.name) for key in KEYS] == ["", "", "", "", 115200, "", "A4", "", 7]
    for key in KEYS:  # every example is a value the key takes
        assert key.check(key.example) == key.example


def test_every_key_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text(encoding="utf-8")
    for key in KEYS:
        assert f"`{key.name}`" in text, key.name


# --- loading ------------------------------------------------------------------------------------


def test_a_missing_file_gives_the_defaults_and_creates_nothing(data: Path) -> None:
    config = load_config(data)
    assert config == Config.defaults(data / "config.yaml")
    assert config.path == data / "config.yaml"
    assert all(config.source(key.name) == "default" for key in KEYS)
    assert (config.clinic_name, config.device_baud, config.report_paper) == ("", 115200, "A4")
    assert not data.exists()  # reading never creates the data folder


@pytest.mark.parametrize("text", ["", "# only a comment\n", "clinic:\n", "clinic:\n  name:\n"])
def test_an_empty_file_or_empty_keys_give_the_defaults(data: Path, text: str) -> None:
    write(data, text)
    config = load_config(data)
    assert config.clinic_name == "" and config.source("clinic.name") == "default"
    assert config.in_file == frozenset()


def test_the_data_folder_follows_epm_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("EPM_HOME", str(home))
    set_value(None, "station.name", "Room 2")
    assert (home / "config.yaml").is_file()
    assert load_config(None).station_name == "Room 2"
    assert config_path(tmp_path / "other") == tmp_path / "other" / "config.yaml"  # --data-dir wins


@pytest.mark.parametrize(
    ("key", "text", "expected", "attr"),
    [
        ("clinic.name", "  Clínica Capilar Norte  ", "Clínica Capilar Norte", "clinic_name"),
        ("clinic.contact", "+34 910 000 000 · a@example.com", None, "clinic_contact"),
        ("station.name", "Room 2", None, "station_name"),
        ("device.port", "/dev/serial/by-id/usb-EPM-1", None, "device_port"),
        ("device.port", "socket://192.168.1.20:7000", None, "device_port"),
        ("device.baud", "921600", 921600, "device_baud"),
        ("practitioner.default", "Dana Example", None, "practitioner_default"),
        ("report.paper", "letter", "Letter", "report_paper"),
        ("report.paper", "a4", "A4", "report_paper"),
    ],
)
def test_every_key_is_set_and_read_back(
    data: Path, key: str, text: str, expected: object, attr: str
) -> None:
    want = text if expected is None else expected
    config = set_value(data, key, text)
    assert config.get(key) == want and getattr(config, attr) == want
    assert config.source(key) == "file"
    again = load_config(data)
    assert again.get(key) == want and again.source(key) == "file"
    others = [k.name for k in KEYS if k.name != key]
    assert all(again.source(name) == "default" for name in others)


def test_all_keys_together(data: Path) -> None:
    values = {
        "clinic.name": "Clínica Capilar Norte",
        "clinic.contact": "recepcion@example.com",
        "station.name": "Room 2",
        "device.port": "/dev/ttyUSB0",
        "device.baud": "9600",
        "practitioner.default": "Dana Example",
        "report.paper": "Letter",
    }
    for key, text in values.items():
        set_value(data, key, text)
    config = load_config(data)
    assert config.in_file == frozenset(values)
    assert config.device_baud == 9600
    assert {key: str(config.get(key)) for key in values} == values


@pytest.mark.parametrize(
    "text", ["12", "true", "null", "~", "#1 Clinic", "a: b", "O'Brien", "@home", "- x", "", "yes"]
)
def test_text_that_means_something_else_in_yaml_stays_text(data: Path, text: str) -> None:
    set_value(data, "clinic.name", text)
    assert load_config(data).clinic_name == text


def test_paper_size_is_case_insensitive_and_stored_as_a4_or_letter(data: Path) -> None:
    set_value(data, "report.paper", "LETTER")
    assert "  paper: Letter\n" in (data / "config.yaml").read_text()
    write(data, "report:\n  paper: a4\n")
    assert load_config(data).report_paper == "A4"


# --- set and unset keep the file ----------------------------------------------------------------

COMMENTED = """\
# Clinic settings, kept by reception.
clinic:
  # as printed on the handout
  name: Clínica Norte  # since 2024

# the treatment room
station:
  name: Room 2
# end of file
"""


def test_set_keeps_comments_and_other_keys(data: Path) -> None:
    write(data, COMMENTED)
    set_value(data, "clinic.contact", "recepcion@example.com")
    set_value(data, "device.baud", "9600")
    set_value(data, "station.name", "Room 3")
    assert (data / "config.yaml").read_text() == (
        "# Clinic settings, kept by reception.\n"
        "clinic:\n"
        "  # as printed on the handout\n"
        "  name: Clínica Norte  # since 2024\n"
        "  contact: recepcion@example.com\n"
        "\n"
        "# the treatment room\n"
        "station:\n"
        "  name: Room 3\n"
        "device:\n"
        "  baud: 9600\n"
        "# end of file\n"
    )
    config = load_config(data)
    assert (config.clinic_name, config.clinic_contact) == ("Clínica Norte", "recepcion@example.com")


def test_a_new_file_starts_with_a_comment_saying_what_it_is(data: Path) -> None:
    set_value(data, "clinic.name", "Clínica Norte")
    text = (data / "config.yaml").read_text()
    assert text.startswith("# epm settings for this data folder")
    assert text.endswith("clinic:\n  name: Clínica Norte\n")


def test_unset_goes_back_to_the_default_and_keeps_the_rest(data: Path) -> None:
    write(data, COMMENTED)
    config = unset_value(data, "station.name")
    assert config.station_name == "" and config.source("station.name") == "default"
    assert config.clinic_name == "Clínica Norte"
    text = (data / "config.yaml").read_text()
    assert "station:" not in text  # a section left empty goes too
    for comment in ("# Clinic settings", "# as printed", "# since 2024", "# end of file"):
        assert comment in text
    assert load_config(data) == config


def test_unset_of_a_key_not_in_the_file_changes_nothing(data: Path) -> None:
    path = write(data, COMMENTED)
    config = unset_value(data, "report.paper")
    assert config.report_paper == "A4" and path.read_text() == COMMENTED
    assert unset_value(data / "none", "clinic.name") == Config.defaults(
        data / "none" / "config.yaml"
    )
    assert not (data / "none").exists()


def test_set_mends_a_bad_value_and_reports_what_is_still_wrong(data: Path) -> None:
    path = write(data, "report:\n  paper: A3\ndevice:\n  baud: 7\n")
    with pytest.raises(ConfigError) as caught:
        set_value(data, "report.paper", "Letter")
    message = str(caught.value)
    assert message.startswith(f"report.paper was set to 'Letter' in {path}, but the file has")
    assert problem_lines(caught.value) == [
        f"{path}:4:9: device.baud: 7 is not a baud rate the EPM-1 link runs at: use one of "
        "9600, 19200, 38400, 57600, 115200, 230400, 460800, 921600"
    ]
    assert "  paper: Letter\n" in path.read_text()
    assert unset_value(data, "device.baud").device_baud == 115200  # and now it loads


def test_set_refuses_a_file_yaml_cannot_read_and_leaves_it(data: Path) -> None:
    path = write(data, 'clinic:\n  name: "unclosed\n')
    with pytest.raises(ConfigError) as caught:
        set_value(data, "clinic.name", "x")
    assert problem_lines(caught.value) == [
        f"{path}:2:9: the quote opened here is never closed: add the closing quote at the end "
        "of the text"
    ]
    assert str(caught.value).endswith(
        f"Edit {path} to fix it, or move it away to start again from the defaults."
    )
    assert path.read_text() == 'clinic:\n  name: "unclosed\n'


# --- refused keys and values -------------------------------------------------------------------


def test_an_unknown_key_is_refused_naming_the_known_keys(data: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        set_value(data, "clinic.nme", "x")
    assert str(caught.value) == (
        f"unknown key 'clinic.nme' (did you mean clinic.name?): the known keys are {KNOWN}"
    )
    with pytest.raises(ConfigError, match="the known keys are"):
        unset_value(data, "mail.server")
    with pytest.raises(ConfigError, match="unknown key 'paper'"):
        load_config(data).get("paper")
    with pytest.raises(ConfigError, match="unknown key"):
        key_spec("")
    assert not data.exists()


@pytest.mark.parametrize(
    ("key", "text", "message"),
    [
        (
            "device.baud",
            "fast",
            "device.baud: 'fast' is not a number: use one of 9600, 19200, 38400, 57600, 115200, "
            "230400, 460800, 921600, e.g. `epm config set device.baud 115200`",
        ),
        (
            "device.baud",
            "1200",
            "device.baud: 1200 is not a baud rate the EPM-1 link runs at: use one of 9600, "
            "19200, 38400, 57600, 115200, 230400, 460800, 921600, e.g. "
            "`epm config set device.baud 115200`",
        ),
        (
            "report.paper",
            "A3",
            "report.paper: 'A3' is not a paper size: use A4 or Letter, e.g. "
            "`epm config set report.paper Letter`",
        ),
        (
            "clinic.name",
            "x" * 121,
            "clinic.name: is 121 characters long; at most 120 are allowed: shorten it, e.g. "
            "`epm config set clinic.name 'Clínica Capilar Norte'`",
        ),
        ("clinic.contact", "x" * 201, "clinic.contact: is 201 characters long; at most 200"),
        ("station.name", "x" * 61, "station.name: is 61 characters long; at most 60"),
        ("practitioner.default", "x" * 121, "practitioner.default: is 121 characters long"),
        ("device.port", "x" * 201, "device.port: is 201 characters long; at most 200"),
        (
            "device.port",
            "/dev/tty\tUSB0",
            "device.port: must be one line of text, without line breaks, tabs or control "
            "characters, e.g. `epm config set device.port /dev/serial/by-id/usb-EPM-1`",
        ),
        ("clinic.name", "two\nlines", "clinic.name: must be one line of text"),
    ],
)
def test_a_bad_value_is_refused_with_what_is_allowed(
    data: Path, key: str, text: str, message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        set_value(data, key, text)
    assert str(caught.value).startswith(message)
    assert "e.g. `epm config set" in str(caught.value)
    assert not data.exists()  # nothing was written


def test_the_longest_allowed_values_are_taken(data: Path) -> None:
    for key in KEYS:
        if key.kind == "text":
            assert set_value(data, key.name, "x" * key.max_length).get(key.name) == "x" * (
                key.max_length
            )
    for rate in BAUD_RATES:
        assert set_value(data, "device.baud", str(rate)).device_baud == rate


# --- located problems in the file --------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "located"),
    [
        (
            'clinic:\n  name: "unclosed\n',
            "2:9: the quote opened here is never closed: add the closing quote at the end of the "
            "text",
        ),
        (
            "clinic:\n\tname: x\n",
            "2:1: a tab character is used for indentation: YAML indents with spaces only",
        ),
        (
            "clinic:\n  name:\tx\n",
            "2:8: a tab character here: YAML separates keys and values with spaces only",
        ),
        (
            "- clinic\n- station\n",
            "1:1: the file holds a list, not settings: write a section name on its own line "
            "(e.g. clinic:) with its keys indented below it (e.g.   name: ...)",
        ),
        (
            "clinic:\n  name: x\nclinc:\n  contact: y\n",
            f"3:1: clinc: unknown section (did you mean clinic?): the known keys are {KNOWN}",
        ),
        (
            "clinic:\n  nmae: x\n",
            "2:3: clinic.nmae: unknown key (did you mean clinic.name?): the known keys are "
            f"{KNOWN}",
        ),
        (
            "clinic:\n  name: a\n  name: b\n",
            '3:3: the key "name" appears twice in this mapping: keep one of them',
        ),
        ("clinic: Norte\n", "1:9: clinic: must hold its keys on the lines below it, indented"),
        (
            "report:\n  paper: A3\n",
            "2:10: report.paper: 'A3' is not a paper size: use A4 or Letter",
        ),
        (
            "device:\n  baud: fast\n",
            "2:9: device.baud: 'fast' is not a number: use one of 9600, 19200",
        ),
        (
            "device:\n  baud: '115200'\n",
            "2:9: device.baud: '115200' is text, not a number: write it without quotes",
        ),
        ("device:\n  baud: true\n", "2:9: device.baud: true is not a number"),
        (
            "device:\n  baud: 1200\n",
            "2:9: device.baud: 1200 is not a baud rate the EPM-1 link runs at",
        ),
        (
            "station:\n  name: 12\n",
            '2:9: station.name: 12 is a number, not text: put it in quotes, e.g. name: "12"',
        ),
        (
            "station:\n  name: [2, 3]\n",
            "2:9: station.name: a list is not allowed here: write one line of text",
        ),
        (
            "clinic:\n  name: |\n    two\n    lines\n",
            "2:9: clinic.name: must be one line of text",
        ),
        (f"clinic:\n  name: {'x' * 121}\n", "2:9: clinic.name: is 121 characters long"),
        ("clinic: {name: 12}\n", "1:16: clinic.name: 12 is a number, not text"),
    ],
)
def test_problems_in_the_file_are_located(data: Path, text: str, located: str) -> None:
    path = write(data, text)
    with pytest.raises(ConfigError) as caught:
        load_config(data)
    lines = problem_lines(caught.value)
    assert len(lines) == 1
    assert lines[0].startswith(f"{path}:{located}")
    assert lines[0] in str(caught.value).splitlines()


def test_every_problem_is_reported_at_once_with_how_to_fix(data: Path) -> None:
    path = write(
        data,
        "# our clinic\nclinic:\n  name: Clínica Norte\n  phone: 910\nreport:\n  paper: A3\n"
        "mail:\n  server: x\n",
    )
    with pytest.raises(ConfigError) as caught:
        load_config(data)
    lines = str(caught.value).splitlines()
    assert lines[0] == f"the configuration file {path} has 3 problems:"
    assert lines[1].startswith(f"{path}:4:3: clinic.phone: unknown key")
    assert lines[2] == f"{path}:6:10: report.paper: 'A3' is not a paper size: use A4 or Letter"
    assert lines[3].startswith(f"{path}:7:1: mail: unknown section")
    assert lines[4] == (
        f"Edit {path} or use `epm config set KEY VALUE` (`epm config show` lists the keys)."
    )
    assert caught.value.path == path


def test_a_file_that_is_not_utf8_or_too_large_is_located(data: Path) -> None:
    path = write(data, "")
    path.write_bytes(b"clinic:\n  name: Cl\xednica\n")
    with pytest.raises(ConfigError) as caught:
        load_config(data)
    assert problem_lines(caught.value) == [
        f"{path}:2:11: the file is not UTF-8 text (byte 0xED cannot be read): save it with "
        "UTF-8 encoding"
    ]
    path.write_text("# x\n" * 20_000)
    with pytest.raises(ConfigError, match=r"config\.yaml:1:1: the file is 80,000 bytes"):
        load_config(data)


# --- the file on disk --------------------------------------------------------------------------


def test_the_file_is_written_mode_0600_with_no_temporary_file_left(data: Path) -> None:
    set_value(data, "clinic.name", "Clínica Norte")
    path = data / "config.yaml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(data.stat().st_mode) == 0o700  # a new data folder, as the records make
    os.chmod(path, 0o644)
    set_value(data, "station.name", "Room 2")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    unset_value(data, "station.name")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in data.iterdir()) == ["config.yaml"]


def test_a_symlinked_config_yaml_is_never_written_through(data: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere.yaml"
    elsewhere.write_text("clinic:\n  name: Elsewhere\n")
    data.mkdir()
    (data / "config.yaml").symlink_to(elsewhere)
    for change in (
        lambda: set_value(data, "clinic.name", "Mine"),
        lambda: unset_value(data, "clinic.name"),
    ):
        with pytest.raises(ConfigError, match="is a symbolic link: epm does not write"):
            change()
    assert elsewhere.read_text() == "clinic:\n  name: Elsewhere\n"
    assert (data / "config.yaml").is_symlink()
    assert sorted(p.name for p in data.iterdir()) == ["config.yaml"]
    # A link to nowhere is not followed either: nothing is created at its target.
    (data / "config.yaml").unlink()
    (data / "config.yaml").symlink_to(tmp_path / "nowhere.yaml")
    with pytest.raises(ConfigError, match="symbolic link"):
        set_value(data, "clinic.name", "Mine")
    assert not (tmp_path / "nowhere.yaml").exists()


def test_a_folder_where_the_file_belongs_is_refused(data: Path) -> None:
    (data / "config.yaml").mkdir(parents=True)
    with pytest.raises(ConfigError, match="is not a regular file"):
        load_config(data)


# --- which value is used ------------------------------------------------------------------------


@pytest.fixture
def configured(data: Path) -> Config:
    write(
        data,
        "device:\n  port: /dev/ttyUSB0\n  baud: 9600\npractitioner:\n  default: Dana Example\n",
    )
    return load_config(data)


def test_a_flag_wins_over_the_environment_the_file_and_the_default(configured: Config) -> None:
    env = {"EPM_PORT": "/dev/ttyUSB1", "EPM_BAUD": "19200", "EPM_PRACTITIONER": "Env Name"}
    chosen = effective(
        configured, port="socket://h:7000", baud=57600, practitioner="Flag Name", env=env
    )
    assert (chosen.port, chosen.baud, chosen.practitioner) == (
        "socket://h:7000",
        57600,
        "Flag Name",
    )
    assert {s.key: (s.source, s.origin) for s in chosen.settings} == {
        "device.port": ("flag", "--port"),
        "device.baud": ("flag", "--baud"),
        "practitioner.default": ("flag", "--practitioner"),
    }


def test_the_environment_wins_over_the_file(configured: Config) -> None:
    env = {"EPM_PORT": " /dev/ttyUSB1 ", "EPM_BAUD": "19200", "EPM_PRACTITIONER": "Env Name"}
    chosen = effective(configured, env=env)
    assert (chosen.port, chosen.baud, chosen.practitioner) == ("/dev/ttyUSB1", 19200, "Env Name")
    assert chosen.source("device.port") == chosen.source("device.baud") == "env"


def test_the_file_wins_over_the_default(configured: Config, data: Path) -> None:
    blank = {"EPM_PORT": "  ", "EPM_BAUD": "", "EPM_PRACTITIONER": " "}  # blank: not set
    chosen = effective(configured, port="  ", practitioner="", env=blank)
    assert (chosen.port, chosen.baud, chosen.practitioner) == ("/dev/ttyUSB0", 9600, "Dana Example")
    assert {s.source for s in chosen.settings} == {"file"}
    assert {s.origin for s in chosen.settings} == {str(data / "config.yaml")}


def test_with_nothing_set_the_defaults_are_used() -> None:
    chosen = effective(None, env={})
    assert (chosen.port, chosen.baud, chosen.practitioner) == ("", 115200, "")
    assert {s.source for s in chosen.settings} == {"default"}


def test_each_level_alone(configured: Config) -> None:
    env = {"EPM_BAUD": "38400"}
    assert resolve(configured, "device.port", env=env).value == "/dev/ttyUSB0"
    assert resolve(configured, "device.baud", env=env).value == 38400
    assert resolve(configured, "device.baud", 230400, env=env).value == 230400
    assert resolve(configured, "clinic.name", env=env).source == "default"


def test_an_environment_value_is_checked_like_the_file(configured: Config) -> None:
    with pytest.raises(ConfigError) as caught:
        effective(configured, env={"EPM_BAUD": "fast"})
    assert str(caught.value) == (
        "EPM_BAUD (which overrides device.baud): 'fast' is not a number: use one of 9600, "
        "19200, 38400, 57600, 115200, 230400, 460800, 921600, e.g. EPM_BAUD=115200; or unset "
        "EPM_BAUD to use the configuration file"
    )
    with pytest.raises(ConfigError, match=r"EPM_BAUD .* 1234 is not a baud rate"):
        effective(configured, env={"EPM_BAUD": "1234"})
