"""No key does something other than what it says, or nothing without saying why (issue
item 4): Enter always goes on and never turns a zone off, space toggles with ✔/✘ shown,
ctrl+c quits the way ctrl+q does, a field that is full says so instead of cutting what was
typed, and a key that does not apply yet says what is missing.
"""

from __future__ import annotations

from typing import Any

from textual import events

from controller.records import RecordStore
from controller.session.model import Phase
from controller.ui.practitioner.checklist import ChecklistAnswers, ToggleList
from controller.ui.practitioner.home import HomeScreen
from controller.ui.practitioner.new_session import NewSessionScreen
from tests.ui.conftest import FakeEngine, FixedDevice, make_app, press, snapshot, wait_for


def problem(screen: NewSessionScreen) -> str:
    return str(screen.query_one("#wizard-problem").render())


async def open_wizard(pilot: Any, app: Any) -> NewSessionScreen:
    await wait_for(pilot, lambda: app.connection == "up", what="connected")
    await wait_for(pilot, lambda: app.screen.active_bindings["n"].enabled, what="n offered")
    await press(pilot, "n")
    await wait_for(pilot, lambda: isinstance(app.screen, NewSessionScreen), what="wizard")
    screen = app.screen
    assert isinstance(screen, NewSessionScreen)
    await wait_for(pilot, lambda: app.focused is screen.query_one("#client-code"))
    return screen


async def to_zones_page(pilot: Any, screen: NewSessionScreen) -> ToggleList:
    await press(pilot, *"C-0042", "enter")
    await wait_for(pilot, lambda: screen.page == 1, what="protocol page")
    await wait_for(pilot, lambda: screen.library_loaded, what="the library loaded")
    await press(pilot, "enter")  # the first (runnable) protocol
    await wait_for(pilot, lambda: screen.page == 2, what="zones page")
    zones = screen.query_one("#zones", ToggleList)
    await wait_for(pilot, lambda: screen.app.focused is zones, what="zones focused")
    return zones


async def test_enter_on_the_zones_page_goes_on_and_space_toggles_with_marks(
    store: RecordStore,
) -> None:
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_wizard(pilot, app)
        zones = await to_zones_page(pilot, screen)
        every = list(zones.selected)
        assert len(every) == 3
        first = str(zones.get_option_at_index(0).prompt)
        assert first.startswith(" ✔ ")
        await press(pilot, "down", "space")  # the second zone off: ✘, in words too
        second = str(zones.get_option_at_index(1).prompt)
        assert second.startswith(" ✘ ") and "not today" in second
        assert zones.selected == [every[0], every[2]]
        await press(pilot, "enter")  # goes on, and turns nothing off
        await wait_for(pilot, lambda: screen.page == 3, what="checklist page")
        assert zones.selected == [every[0], every[2]]


async def test_enter_goes_on_from_the_checklist_and_space_answers(store: RecordStore) -> None:
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_wizard(pilot, app)
        await to_zones_page(pilot, screen)
        await press(pilot, "enter")
        await wait_for(pilot, lambda: screen.page == 3, what="checklist page")
        checklist = screen.query_one("#checklist", ChecklistAnswers)
        first = checklist.items[0]
        await press(pilot, "space")  # unanswered → no
        assert checklist.answers[first.id] is False
        assert str(checklist.get_option_at_index(0).prompt).startswith(" ✔ no")
        await press(pilot, "space")  # no → yes: a contraindication blocks, marked ✘
        assert checklist.answers[first.id] is True
        assert str(checklist.get_option_at_index(0).prompt).startswith(" ✘ YES!")
        await press(pilot, "enter")  # never answers: it goes on (refused here, with why)
        assert checklist.answers[first.id] is True
        await wait_for(pilot, lambda: "does not allow" in problem(screen), what="why not")
        assert screen.page == 3


async def test_ctrl_c_behaves_like_the_documented_quit(store: RecordStore) -> None:
    engine = FakeEngine(snapshot(Phase.DELIVERING))
    app = make_app(store, engine=engine)
    notices: list[str] = []
    app.notify = lambda message, **_: notices.append(message)  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connection == "up")
        app.attach_engine(engine, None)
        await press(pilot, "ctrl+c", "ctrl+c")  # refused while delivering, as ctrl+q is
        assert app.is_running
        assert "stop it first" in notices[-1]
        assert not any("Press" in n and "to quit" in n for n in notices)
        engine.set(phase=Phase.PLACE)
        await press(pilot, "ctrl+c")  # open but not delivering: asked once, as ctrl+q
        assert app.is_running and "recorded as interrupted" in notices[-1]
        await press(pilot, "ctrl+c")
        await wait_for(pilot, lambda: not app.is_running, what="epm to quit")


async def test_an_over_long_client_code_is_refused_with_a_message(store: RecordStore) -> None:
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_wizard(pilot, app)
        code = screen.query_one("#client-code")
        await press(pilot, *("C" * 33))  # one more than a code may have
        assert code.value == "C" * 32
        await wait_for(pilot, lambda: "at most 32 characters" in problem(screen), what="why")
        await press(pilot, *(["backspace"] * 32))
        screen.problem("")
        pasted = "C-" + "0" * 53  # 55 characters: not taken, never cut to 32
        app.post_message(events.Paste(pasted))
        await wait_for(pilot, lambda: "at most 32 characters" in problem(screen), what="why")
        assert code.value == ""
        assert code.max_length == 32
        for field in ("#client-name", "#practitioner", "#serum-lot"):
            assert screen.query_one(field).max_length > 0, field


async def test_ctrl_s_says_what_is_missing_before_the_checklist_is_complete(
    store: RecordStore,
) -> None:
    app = make_app(store)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await open_wizard(pilot, app)
        await to_zones_page(pilot, screen)
        await press(pilot, "enter")
        await wait_for(pilot, lambda: screen.page == 3, what="checklist page")
        assert not screen.active_bindings["ctrl+s"].enabled  # dimmed…
        await press(pilot, "ctrl+s")  # …and says why when pressed
        await wait_for(pilot, lambda: "Not ready to start" in problem(screen), what="why")
        assert "checklist" in problem(screen)


async def test_home_keys_that_do_not_apply_say_why(store: RecordStore) -> None:
    device = FixedDevice()
    device.fail_with = OSError("the port is gone")
    app = make_app(store, device=device)
    notices: list[str] = []
    app.notify = lambda message, **_: notices.append(message)  # type: ignore[method-assign]
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.connection == "failed")
        await press(pilot, "n")
        assert isinstance(app.screen, HomeScreen)
        assert notices and "not connected" in notices[-1] and "press c" in notices[-1]
