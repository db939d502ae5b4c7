"""What one entry looks like: a JSON object on one line, with the level, area, message and the
record's fields; exceptions with their traceback; only epm's loggers, INFO and above."""

from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

from controller import servicelog
from controller.servicelog import JsonLinesFormatter, ServiceLog, area_of
from tests.servicelog.conftest import json_lines


def test_each_entry_is_one_json_object_with_its_fields(service_log: ServiceLog) -> None:
    logging.getLogger("epm.link").warning(
        "connected on %s",
        "sim://",
        extra={"event": "handshake", "serial": "SIM-000042", "boot_id": 7951, "zones": ("a",)},
    )
    assert service_log.flush()
    raw = service_log.path.read_text().splitlines()
    assert all(line.startswith("{") and line.endswith("}") for line in raw)
    entry = json_lines(service_log.path)[-1]
    assert entry["level"] == "WARNING" and entry["area"] == "link"
    assert entry["msg"] == "connected on sim://"
    assert entry["event"] == "handshake" and entry["serial"] == "SIM-000042"
    assert entry["boot_id"] == 7951 and entry["zones"] == ["a"]
    assert entry["logger"] == "epm.link" and entry["thread"] == "MainThread"
    when = dt.datetime.fromisoformat(entry["ts"])
    assert when.tzinfo is not None  # local time with its offset
    assert abs((dt.datetime.now(dt.UTC) - when).total_seconds()) < 60
    # The first entry says which program wrote the log.
    first = json_lines(service_log.path)[0]
    assert first["event"] == "process_start" and first["program"] == "test"


def test_an_existing_log_exception_reaches_it_with_its_traceback(service_log: ServiceLog) -> None:
    def failing_step() -> None:
        raise ValueError("the store said no")

    try:
        failing_step()
    except ValueError:
        # As the engine's own calls do: controller.* loggers, not epm.*.
        logging.getLogger("controller.session.engine").exception("session engine failed")
    assert service_log.flush()
    entry = json_lines(service_log.path)[-1]
    assert entry["level"] == "ERROR" and entry["area"] == "session"
    assert entry["msg"] == "session engine failed"
    assert entry["exc"].startswith("Traceback (most recent call last):")
    assert "failing_step" in entry["exc"] and "ValueError: the store said no" in entry["exc"]


def test_values_json_cannot_hold_become_text_and_long_text_is_cut(
    service_log: ServiceLog,
) -> None:
    logging.getLogger("epm.device").info(
        "x" * 5000,
        extra={"path": Path("/dev/ttyUSB0"), "ratio": float("nan"), "blob": "y" * 2000},
    )
    assert service_log.flush()
    entry = json_lines(service_log.path)[-1]
    assert entry["path"] == "/dev/ttyUSB0" and entry["ratio"] == "nan"
    assert len(entry["msg"]) <= servicelog.MAX_MESSAGE + 1
    assert len(entry["blob"]) <= servicelog.MAX_FIELD + 1


def test_only_info_and_above_from_epm_loggers_are_written(service_log: ServiceLog) -> None:
    logging.getLogger("epm.link").debug("a debug line")
    logging.getLogger("controller.link.link").debug("another debug line")
    logging.getLogger("textual").error("someone else's error")
    logging.getLogger("epm.session").info("an info line")
    assert service_log.flush()
    messages = [e["msg"] for e in json_lines(service_log.path)]
    assert "an info line" in messages
    assert not {"a debug line", "another debug line", "someone else's error"} & set(messages)


def test_the_area_is_the_part_of_the_logger_name_after_epm_or_controller() -> None:
    assert area_of("epm.link") == "link"
    assert area_of("controller.link.link") == "link"
    assert area_of("controller.ui.app") == "ui"
    assert area_of("epm") == "epm"
    assert area_of("simulator.runner") == "simulator.runner"


def test_a_field_named_like_an_entry_key_is_kept_apart() -> None:
    record = logging.LogRecord("epm.link", logging.INFO, __file__, 1, "m", (), None)
    record.level = "mine"  # a field that would collide with the entry's own key
    entry = json.loads(JsonLinesFormatter().format(record))
    assert entry["level"] == "INFO" and entry["f_level"] == "mine"


def test_the_readable_form_has_local_time_level_area_message_and_key_fields() -> None:
    line = json.dumps(
        {
            "ts": "2026-03-02T12:00:01.250+00:00",
            "level": "ERROR",
            "area": "device",
            "msg": "device fault: OVERCURRENT",
            "event": "device_fault",
            "faults": ["OVERCURRENT"],
            "dseq": 39,
            "thread": "epm-link-dispatch",
        }
    )
    entry = servicelog.parse_entry(line)
    assert entry is not None
    text = servicelog.format_entry(entry, tz=dt.UTC)
    assert text == "2026-03-02 12:00:01.250 ERROR    device   device fault: OVERCURRENT  dseq=39"
    short = servicelog.short_line(entry, 30, tz=dt.UTC)
    assert short.startswith("12:00:01 ERROR device  device") and len(short) == 30
