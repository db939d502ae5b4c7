"""F12 from a terminal is acted on in the driver's input thread, never queued behind the
event loop (issue 11: measured under 1000 Hz telemetry, the key waited up to 52 ms in the
loop's queue before its binding ran).

The driver here is the one the app runs in a real terminal (``EpmApp.get_driver_class()``,
the platform's driver with the emergency-stop key taken first); its ``process_message`` is
what its input thread calls for every parsed key. The event loop is held on purpose while the
key is pressed: the stop must reach the device anyway.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from textual import events

from controller.records import RecordStore
from controller.session.model import Phase
from controller.ui.shared.estop_key import ESTOP_KEYS, EstopKeyDriver
from tests.ui.conftest import (
    FakeEngine,
    FixedDevice,
    make_app,
    show_run_screen,
    snapshot,
    wait_for,
)


def press_in_input_thread(app: Any, key: str) -> threading.Thread:
    """What the terminal driver's input thread does with a parsed key."""
    driver = app.get_driver_class()(app)
    assert isinstance(driver, EstopKeyDriver)
    thread = threading.Thread(target=driver.process_message, args=(events.Key(key, None),))
    thread.start()
    return thread


def hold_the_loop_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    """Block the calling (event-loop) thread until ``condition()`` holds: nothing queued for
    the loop can run meanwhile."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.001)
    return True


def notices(app: Any) -> list[str]:
    return [str(n.message) for n in app._notifications]


async def test_f12_stops_the_session_while_the_event_loop_is_busy(store: RecordStore) -> None:
    device = FixedDevice()
    engine = FakeEngine(snapshot(Phase.DELIVERING), device=device)
    app = make_app(store, device=device, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        await show_run_screen(app, pilot, engine)
        thread = press_in_input_thread(app, "f12")
        stopped = hold_the_loop_until(lambda: device.estops == 1)
        thread.join(5)
        assert stopped, "ESTOP waited for the event loop"
        assert engine.estops == [("operator", "delivering")]
        await wait_for(
            pilot,
            lambda: "Emergency stop sent: output off." in notices(app),
            what="the screens told after the stop",
        )
        assert device.estops == 1, "sent once: the binding did not send it again"
        assert app.estops_requested == 1


async def test_ctrl_e_stops_the_device_with_no_session_from_the_input_thread(
    store: RecordStore,
) -> None:
    device = FixedDevice()
    app = make_app(store, device=device)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connection == "up", what="device connected")
        thread = press_in_input_thread(app, "ctrl+e")
        assert hold_the_loop_until(lambda: device.estops == 1), "ESTOP waited for the loop"
        thread.join(5)
        await wait_for(
            pilot,
            lambda: any("no session was running" in n for n in notices(app)),
            what="the no-session notice",
        )
        assert app.estop_without_session


async def test_an_estop_key_with_no_device_says_there_is_nothing_to_stop(
    store: RecordStore,
) -> None:
    device = FixedDevice()
    device.fail_with = OSError("no such port")
    app = make_app(store, device=device)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connection == "failed", what="connection failed")
        press_in_input_thread(app, "f12").join(5)
        await wait_for(
            pilot,
            lambda: any("no output to stop" in n for n in notices(app)),
            what="the nothing-to-stop notice",
        )
        assert device.estops == 0


async def test_other_keys_go_to_the_app_as_before(store: RecordStore) -> None:
    app = make_app(store)
    seen: list[str] = []
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connection == "up", what="device connected")
        original = app.on_event

        async def spy(event: events.Event) -> None:
            if isinstance(event, events.Key):
                seen.append(event.key)
            await original(event)

        app.on_event = spy  # type: ignore[method-assign]
        press_in_input_thread(app, "x").join(5)
        await wait_for(pilot, lambda: "x" in seen, what="the key delivered to the app")
    assert "f12" in ESTOP_KEYS and "ctrl+e" in ESTOP_KEYS


async def test_an_estop_that_fails_on_the_input_thread_is_tried_again_on_the_loop(
    store: RecordStore,
) -> None:
    device = FixedDevice()
    engine = FakeEngine(snapshot(Phase.DELIVERING), device=device)
    app = make_app(store, device=device, engine=engine)
    calls = {"n": 0}
    real = engine.emergency_stop

    def first_raises(source: str = "operator") -> bool:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("simulated bug on the input thread")
        return real(source)

    engine.emergency_stop = first_raises  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await show_run_screen(app, pilot, engine)
        press_in_input_thread(app, "f12").join(5)
        await wait_for(pilot, lambda: device.estops == 1, what="the loop's second try")
        await wait_for(
            pilot,
            lambda: "Emergency stop sent: output off." in notices(app),
            what="the notice",
        )
