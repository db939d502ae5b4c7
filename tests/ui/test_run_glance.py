"""The run screen at a glance, and what a choice is made on.

What it proves, against a scripted engine:

* the output (actual and set) and the zone's time left are large digits; readings older than
  0.3 s (or from before the link went down) are dimmed with their age, and "—" after 2 s;
* the scalp map marks every zone of the protocol format (temporal left and right apart, a
  patch beside the map) as done / now / next;
* the footer shows the five keys of the phase (F12 and F1 always); F1 still lists every key;
* questions (stop, skip, end) open under the readings, which stay visible and keep updating;
* each request carries the ``seen`` of the moment the choice was made: when a question opened,
  or the snapshot on screen when the key was pressed;
* keys typed ahead (before the screen, or before the current step was shown) never start
  output; a key that does not apply says why; a manual step's minimum time is waited for;
* the practitioner's text on this screen has no field names, hex or raw floats.
"""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from rich.console import Console
from textual import events
from textual.widgets import Digits, Input

from controller.records import RecordStore
from controller.session.alarms import AlarmCode
from controller.session.model import Action, LinkView, Phase, Seen, StepStatus, StepView
from controller.ui.app import EpmApp
from controller.ui.practitioner.big_readings import BigReadings
from controller.ui.practitioner.instruction import Instruction
from controller.ui.practitioner.live_readings import LiveReadings
from controller.ui.practitioner.prompt_panel import PromptPanel
from controller.ui.practitioner.run import ACTIONS, FOOTER_KEYS, RunScreen
from controller.ui.practitioner.run_text import (
    Freshness,
    countdown,
    duration_words,
    freshness,
    readings,
    why_not,
)
from controller.ui.practitioner.scalp_map import MAP_ZONES, Mark, scalp_map, zone_marks
from controller.ui.practitioner.zone_progress import ZoneProgress
from controller.ui.shared.help_model import screen_sections
from tests.ui.conftest import (
    FakeEngine,
    alarm,
    live_view,
    make_app,
    press,
    settle,
    show_run_screen,
    snapshot,
    wait_for,
)

SEEN_A = Seen(connection=1, device_state=2, step=1, phase=Phase.PAUSED)
SEEN_B = Seen(connection=1, device_state=3, step=2, phase=Phase.PLACE)
LOST_LINK = LinkView("lost", "sim://fixed", 0, 0, 3, 1.2, 3.4, 500, 7, 0.8)


class SeenEngine(FakeEngine):
    """A fake engine whose ``request`` takes ``seen`` (as the engine's new contract does) and
    records it with each request."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sent: list[tuple[Action, str | None, Seen | None]] = []

    def request(self, action: Action, reason: str | None = None, seen: Seen | None = None) -> None:
        self.requests.append((action, reason))
        self.sent.append((action, reason, seen))


def capture_notices(app: EpmApp) -> list[str]:
    notices: list[str] = []
    app.notify = lambda message, **_: notices.append(str(message))  # type: ignore[method-assign]
    return notices


async def post_key(pilot: Any, event: events.Key) -> None:
    """Deliver a key event made earlier (its timestamp is when it was made)."""
    event.set_sender(pilot.app)
    pilot.app.post_message(event)
    await settle(pilot)


def screen_text(app: EpmApp) -> str:
    """What the terminal shows now, as plain text."""
    width, height = app.size
    console = Console(width=width, height=height, file=io.StringIO(), record=True)
    console.print(app.screen._compositor.render_update(full=True))
    return console.export_text()


# --- words -------------------------------------------------------------------------------------


def test_durations_are_words_and_only_the_countdown_is_mm_ss() -> None:
    assert duration_words(960_000) == "16 min 0 s"
    assert duration_words(252_000) == "4 min 12 s"
    assert duration_words(251_001, round_up=True) == "4 min 12 s"  # a wait is never short
    assert duration_words(251_999) == "4 min 11 s"  # delivered: never claimed early
    assert duration_words(45_000) == "45 s"
    assert duration_words(3_725_000) == "1 h 2 min 5 s"
    assert countdown(123_400) == "02:04"
    assert countdown(0) == "00:00"
    assert countdown(None) == "--:--"


def test_readings_age_into_stale_then_gone() -> None:
    assert freshness(0.1, link_down=False) is Freshness.FRESH
    assert freshness(0.31, link_down=False) is Freshness.STALE
    assert freshness(0.1, link_down=True) is Freshness.STALE  # not current once the link is down
    assert freshness(2.01, link_down=False) is Freshness.GONE
    assert freshness(None, link_down=False) is Freshness.GONE
    stale = readings(snapshot(live=live_view(age_s=0.8)), None, None)
    assert stale.age_note() == "0.8 s old"
    gone = readings(snapshot(Phase.LINK_LOST, live=live_view(age_s=3.2)), None, None)
    assert gone.age_note() == "no link, none for 3 s" and not gone.shown


def test_a_disabled_key_is_explained_in_a_sentence() -> None:
    manual = snapshot(Phase.MANUAL, manual_remaining_ms=94_001)
    assert why_not("confirm_done", manual) == (
        "Wait 1 min 35 s more: this step takes at least 3 min 0 s. "
        "Then press Enter when the step is done."
    )
    delivering = snapshot(Phase.DELIVERING)
    for action in [*ACTIONS, "confirm_start", "pause", "resume"]:
        text = why_not(action, delivering)
        assert text.endswith(".") and "_" not in text, (action, text)
    assert why_not("acknowledge", delivering).startswith("There is no alarm")
    faulted = snapshot(Phase.FAULT, alarms=(alarm(AlarmCode.DEVICE_FAULT),))
    assert "Acknowledge the fault alarm first" in why_not("clear_faults", faulted)


# --- the scalp map -----------------------------------------------------------------------------


def step(index: int, zone: str, status: StepStatus) -> StepView:
    return StepView(index, "delivery", zone, zone, 60_000, 0, status, 600)


ALL_ZONES = (
    step(1, "frontal", StepStatus.DONE),
    step(2, "temporal_left", StepStatus.ACTIVE),
    step(3, "temporal_right", StepStatus.PENDING),
    step(4, "midscalp", StepStatus.PENDING),
    step(5, "crown", StepStatus.SKIPPED),
    step(6, "patch", StepStatus.PENDING),
)


def test_the_scalp_map_marks_every_zone_done_now_and_next() -> None:
    marks = zone_marks(ALL_ZONES, 2, Phase.DELIVERING)
    assert marks == {
        "frontal": Mark.DONE,
        "temporal_left": Mark.NOW,
        "temporal_right": Mark.NEXT,  # left and right are apart
        "midscalp": Mark.TO_COME,
        "crown": Mark.SKIPPED,
        "occipital": Mark.NOT_PLANNED,
        "patch": Mark.TO_COME,
    }
    text = scalp_map(ALL_ZONES, 2, Phase.DELIVERING)
    plain = text.plain
    for name in ("Frontal", "Midscalp", "Crown", "Occipital", " L ", " R ", "patch"):
        assert name in plain, name
    assert "front" in plain and "back" in plain
    lines = plain.splitlines()
    temporal_row = next(n for n, line in enumerate(lines) if " L " in line)
    below = lines[temporal_row + 1]
    assert below.startswith("│ ▶ │") and below.endswith("│ › │")  # left now, right next
    assert "✓ Frontal" in plain and "» Crown" in plain and "· patch" in plain
    # Styled too, so the marks read without colour: now is reverse, next underlined.
    styles = {
        plain[span.start : span.end].strip(): str(span.style) for span in text.spans if span.style
    }
    assert styles["▶"] == "bold reverse" and styles["›"] == "bold underline"
    # Nothing is "now" once the session has ended; every zone of the format is drawn.
    ended = zone_marks(ALL_ZONES, None, Phase.FINISHED)
    assert Mark.NOW not in ended.values() and Mark.NEXT not in ended.values()
    assert set(MAP_ZONES) | {"patch"} == set(marks)


# --- the screen --------------------------------------------------------------------------------


async def test_big_figures_and_stale_readings(store: RecordStore) -> None:
    engine = FakeEngine(snapshot(Phase.DELIVERING))
    app = make_app(store, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await show_run_screen(app, pilot, engine)
        big = screen.query_one(BigReadings)
        out = big.query_one("#out-digits", Digits)
        caption = big.query_one("#out-caption")
        assert out.value == "41.2V" and big.query_one("#set-digits", Digits).value == "42.0V"
        assert screen.query_one(ZoneProgress).query_one(Digits).value == "02:57"  # mm:ss
        assert "Output now" in str(caption.render()) and not big.has_class("-stale")
        # Same size: the output is as tall as the countdown.
        assert out.size.height == screen.query_one(ZoneProgress).query_one(Digits).size.height
        live = screen.query_one(LiveReadings)

        engine.set(kind="notice", live=live_view(age_s=0.8))
        await wait_for(pilot, lambda: big.has_class("-stale"), what="stale output")
        assert "Output 0.8 s old" in str(caption.render())
        assert out.value == "41.2V"  # dimmed (class -stale), with its age
        assert "0.8 s old" in str(live.query_one("#out-text").render())

        engine.set(kind="notice", live=live_view(age_s=2.5))
        await wait_for(pilot, lambda: big.has_class("-gone"), what="no output reading")
        assert out.value == "--.-V"
        assert "—" in str(live.query_one("#cur-text").render())
        assert "—" in str(live.query_one("#imp-text").render())

        # The link is down: a 0.1 s old figure is still not current.
        engine.set(phase=Phase.LINK_LOST, live=live_view(age_s=0.1), link=LOST_LINK)
        await wait_for(pilot, lambda: big.has_class("-stale"), what="no link")
        assert "Output, no link" in str(caption.render())
        assert "Output now" not in screen_text(app)
        assert "no link, 0.1 s old" in str(live.query_one("#out-text").render())

        engine.set(phase=Phase.DELIVERING, live=live_view(age_s=0.02), link=snapshot().link)
        await wait_for(pilot, lambda: not big.has_class("-stale") and not big.has_class("-gone"))


async def test_the_question_docks_under_the_readings_which_keep_updating(
    store: RecordStore,
) -> None:
    engine = FakeEngine(snapshot(Phase.PAUSED))
    app = make_app(store, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await show_run_screen(app, pilot, engine)
        big = screen.query_one(BigReadings)
        countdown_digits = screen.query_one(ZoneProgress).query_one(Digits)
        await press(pilot, "k")
        prompt = screen.query_one(PromptPanel)
        await wait_for(pilot, lambda: prompt.is_open and isinstance(app.focused, Input))
        await wait_for(pilot, lambda: prompt.region.height > 0, what="the panel laid out")
        assert app.screen is screen
        for widget in (big, countdown_digits, screen.query_one("#scalp-map")):
            region = widget.region
            assert region.height > 0 and region.bottom <= prompt.region.y, widget
        assert screen.screen.size.height >= prompt.region.bottom
        engine.set(kind="notice", live=live_view(amplitude_dv=300), setpoint_dv=310)
        out = big.query_one("#out-digits", Digits)
        await wait_for(pilot, lambda: out.value == "30.0V", what="live while asking")
        assert big.query_one("#set-digits", Digits).value == "31.0V"
        await press(pilot, "escape")
        await wait_for(pilot, lambda: not prompt.is_open)
        assert engine.requests == []


async def test_footer_shows_the_five_keys_of_the_phase_and_f1_lists_every_key(
    store: RecordStore,
) -> None:
    engine = FakeEngine(snapshot(Phase.DELIVERING))
    app = make_app(store, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await show_run_screen(app, pilot, engine)

        def footer() -> list[tuple[str, str]]:
            return [(k.key_display, k.description) for k in screen.query("FooterKey")]

        await wait_for(pilot, lambda: len(footer()) == 7)
        assert footer() == [
            ("F12", "E-STOP"),
            ("Space", "Pause"),
            ("+", "+1 V"),
            ("-", "-1 V"),
            ("s", "Stop"),
            ("a", "Ack alarm"),
            ("F1", "Help"),
        ]
        await press(pilot, "space")  # Space pauses, as the footer says
        await wait_for(pilot, lambda: engine.requests == [(Action.PAUSE, None)])
        # The help screen reads the screen's bindings: every key is there.
        run_section = next(
            s for s in screen_sections() if s.source == f"{RunScreen.__module__}.RunScreen"
        )
        listed = {row.action for row in run_section.rows}
        assert set(ACTIONS) | {"confirm_start", "confirm_done", "pause", "resume"} <= listed
        shown = {a for keys in FOOTER_KEYS.values() for a in keys}
        assert shown <= listed and all(len(keys) <= 5 for keys in FOOTER_KEYS.values())
        await press(pilot, "f1")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen")


async def test_seen_when_a_question_opens_is_the_one_sent_when_it_closes(
    store: RecordStore,
) -> None:
    engine = SeenEngine(snapshot(Phase.PAUSED, seen=SEEN_A))
    app = make_app(store, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await show_run_screen(app, pilot, engine)
        prompt = screen.query_one(PromptPanel)
        note = prompt.query_one("#prompt-note")
        for key, action in (("k", Action.SKIP), ("e", Action.END)):
            engine.set(kind="notice", phase=Phase.PAUSED, step_index=2, seen=SEEN_A)
            await wait_for(pilot, lambda: screen.snapshot.seen == SEEN_A)
            await press(pilot, key)
            await wait_for(pilot, lambda: isinstance(app.focused, Input), what=key)
            # Zone 2 finished while the window was open: the screen says so ...
            engine.set(phase=Phase.PLACE, step_index=3, seen=SEEN_B)
            await wait_for(pilot, lambda: "changed while this was open" in str(note.render()))
            assert "refused" in str(note.render())
            await press(pilot, *"sore", "enter")
            await wait_for(pilot, lambda a=action: bool(engine.sent) and engine.sent[-1][0] is a)
            # ... and the answer goes with what it was decided on, for the engine to refuse.
            assert engine.sent[-1] == (action, "sore", SEEN_A)
        # Stop: the engine never refuses it, but it is sent with its seen too.
        engine.set(phase=Phase.DELIVERING, step_index=2, seen=SEEN_A)
        await wait_for(pilot, lambda: screen.snapshot.seen == SEEN_A)
        await press(pilot, "s")
        await wait_for(pilot, lambda: prompt.is_open)
        engine.set(phase=Phase.HOLD, seen=SEEN_B)
        await wait_for(pilot, lambda: "y still stops" in str(note.render()))
        await press(pilot, "y")
        await wait_for(pilot, lambda: engine.sent[-1][0] is Action.STOP, what="the stop sent")
        assert engine.sent[-1] == (Action.STOP, None, SEEN_A)


async def test_a_key_carries_the_snapshot_on_screen_when_it_was_pressed(
    store: RecordStore,
) -> None:
    engine = SeenEngine(snapshot(Phase.DELIVERING, seen=SEEN_A))
    app = make_app(store, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await show_run_screen(app, pilot, engine)
        pressed = events.Key("minus", "-")  # pressed now, on SEEN_A ...
        engine.set(kind="notice", seen=SEEN_B)
        await wait_for(pilot, lambda: screen.snapshot.seen == SEEN_B)
        await post_key(pilot, pressed)  # ... handled after the screen moved on
        await wait_for(pilot, lambda: len(engine.sent) == 1)
        assert engine.sent == [(Action.INTENSITY_DOWN, None, SEEN_A)]
        await press(pilot, "space")
        await wait_for(pilot, lambda: len(engine.sent) == 2)
        assert engine.sent[-1] == (Action.PAUSE, None, SEEN_B)


async def test_keys_typed_ahead_never_start_delivery(store: RecordStore) -> None:
    engine = FakeEngine(snapshot(Phase.PLACE))
    app = make_app(store, engine=engine)
    notices = capture_notices(app)
    async with app.run_test(size=(80, 24)) as pilot:
        typed_ahead = events.Key("enter", "\r")  # e.g. a second Enter on the previous screen
        screen = await show_run_screen(app, pilot, engine)
        assert screen.active_bindings["enter"].binding.action == "confirm_start"
        await post_key(pilot, typed_ahead)
        await wait_for(pilot, lambda: bool(notices), what="the key explained")
        assert engine.requests == []
        assert notices[-1] == (
            "Start zone ignored: it was pressed before the screen showed PLACE HANDPIECE "
            "(step 2). Look, then press it again."
        )
        await press(pilot, "enter")  # pressed after the screen was shown: it counts
        await wait_for(pilot, lambda: engine.requests == [(Action.CONFIRM, None)])
        engine.requests.clear()
        # The same for a key pressed on one step and handled when the next is shown.
        engine.set(phase=Phase.MANUAL, step_index=1, manual_remaining_ms=0)
        await wait_for(pilot, lambda: screen.snapshot.phase is Phase.MANUAL)
        on_manual = events.Key("enter", "\r")
        engine.set(phase=Phase.PLACE, step_index=2)
        await wait_for(pilot, lambda: screen.snapshot.phase is Phase.PLACE)
        await post_key(pilot, on_manual)
        await press(pilot, "minus")  # handled after it: once it is, the Enter was too
        await wait_for(pilot, lambda: engine.requests == [(Action.INTENSITY_DOWN, None)])


async def test_disabled_keys_say_why(store: RecordStore) -> None:
    engine = FakeEngine(snapshot(Phase.DELIVERING))
    app = make_app(store, engine=engine)
    notices = capture_notices(app)
    async with app.run_test(size=(80, 24)) as pilot:
        await show_run_screen(app, pilot, engine)
        await press(pilot, "enter")
        await wait_for(pilot, lambda: len(notices) == 1)
        assert notices[-1].startswith("Enter starts the zone once the handpiece is on it")
        assert "the zone is delivering" in notices[-1]
        await press(pilot, "c")
        await wait_for(pilot, lambda: len(notices) == 2)
        assert "no fault to clear" in notices[-1]
        await press(pilot, "a")
        await wait_for(pilot, lambda: len(notices) == 3)
        assert notices[-1].startswith("There is no alarm to acknowledge")
        await press(pilot, "a", "p")  # the same again at once: not repeated
        await wait_for(pilot, lambda: engine.requests == [(Action.PAUSE, None)])
        assert len(notices) == 3


async def test_a_manual_step_waits_for_its_minimum_time(store: RecordStore) -> None:
    engine = FakeEngine(snapshot(Phase.MANUAL, manual_remaining_ms=94_001))
    app = make_app(store, engine=engine)
    notices = capture_notices(app)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await show_run_screen(app, pilot, engine)
        instruction = str(screen.query_one(Instruction).render())
        assert "wait 1 min 35 s" in instruction  # rounded up: never says less than is left
        assert screen.query_one(ZoneProgress).query_one(Digits).value == "01:35"
        assert not screen.active_bindings["enter"].enabled
        await press(pilot, "enter")
        await wait_for(pilot, lambda: bool(notices), what="the key explained")
        assert engine.requests == [] and notices[-1].startswith("Wait 1 min 35 s more")
        engine.set(kind="notice", manual_remaining_ms=0)
        await wait_for(pilot, lambda: screen.active_bindings["enter"].enabled)
        assert "Minimum time is over" in str(screen.query_one(Instruction).render())
        await press(pilot, "enter")
        await wait_for(pilot, lambda: engine.requests == [(Action.CONFIRM, None)])


#: A snake_case identifier, a hex number, a float with more than two decimals.
NOT_FOR_PRACTITIONERS = re.compile(r"\b[a-z]+_[a-z0-9_]+\b|0x[0-9a-fA-F]+|\d+\.\d{3,}")


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
async def test_the_screen_says_things_in_words(store: RecordStore, size: tuple[int, int]) -> None:
    engine = FakeEngine(snapshot(Phase.DELIVERING))
    app = make_app(store, engine=engine)
    async with app.run_test(size=size) as pilot:
        screen = await show_run_screen(app, pilot, engine)
        situations: list[dict[str, Any]] = [
            {"phase": Phase.DELIVERING},
            {"phase": Phase.HOLD, "alarms": (alarm(AlarmCode.CONTACT_LOST),)},
            {"phase": Phase.LINK_LOST, "link": LOST_LINK, "live": live_view(age_s=0.8)},
            {
                "phase": Phase.FAULT,
                "live": live_view(faults=("OVERCURRENT", "HANDPIECE_REMOVED")),
            },
            {"phase": Phase.MANUAL, "step_index": 1, "manual_remaining_ms": 95_500},
        ]
        for changes in situations:
            engine.set(**changes)
            await wait_for(pilot, lambda p=changes["phase"]: screen.snapshot.phase is p)
            await settle(pilot)
            text = screen_text(app)
            assert not NOT_FOR_PRACTITIONERS.findall(text), (changes["phase"], text)
            assert "min" in text  # durations in words
            if app.screen is not screen:
                app.pop_screen()  # a high alarm's window


async def test_wide_screen_shows_steps_beside_the_readings(store: RecordStore) -> None:
    engine = FakeEngine(snapshot(Phase.DELIVERING))
    app = make_app(store, engine=engine)
    async with app.run_test(size=(120, 40)) as pilot:
        screen = await show_run_screen(app, pilot, engine)
        assert screen.has_class("-wide")

        def beside() -> bool:
            left = screen.query_one("#run-left").region
            right = screen.query_one("#run-right").region
            return right.x >= left.right and right.height > left.height

        await wait_for(pilot, beside, what="steps beside the readings")
        live = screen.query_one(LiveReadings).region
        assert live.width > screen.query_one("#run-figures").region.width  # longer sparklines


async def test_while_a_question_is_open_other_keys_wait(store: RecordStore) -> None:
    engine = FakeEngine(snapshot(Phase.PAUSED))
    app = make_app(store, engine=engine)
    notices = capture_notices(app)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await show_run_screen(app, pilot, engine)
        prompt = screen.query_one(PromptPanel)
        await press(pilot, "k")
        await wait_for(pilot, lambda: isinstance(app.focused, Input))
        await press(pilot, "up")  # not typed, not sent: the question comes first
        await wait_for(pilot, lambda: bool(notices), what="the key explained")
        assert engine.requests == [] and notices[-1].startswith("Answer the question")
        screen.set_focus(None)  # e.g. a click elsewhere
        await settle(pilot)
        await press(pilot, "space")
        await wait_for(pilot, lambda: isinstance(app.focused, Input), what="focus back")
        assert engine.requests == [] and prompt.is_open
        screen.set_focus(None)
        await settle(pilot)
        await press(pilot, "escape")  # still closes it
        await wait_for(pilot, lambda: not prompt.is_open)
        assert engine.requests == []
        await press(pilot, "space")  # the keys are the screen's again
        await wait_for(pilot, lambda: engine.requests == [(Action.RESUME, None)])


async def test_a_not_now_explanation_is_withdrawn_when_the_step_changes(
    store: RecordStore,
) -> None:
    engine = FakeEngine(snapshot(Phase.MANUAL, manual_remaining_ms=4_000))
    app = make_app(store, engine=engine)
    async with app.run_test(size=(80, 24)) as pilot:
        screen = await show_run_screen(app, pilot, engine)
        await press(pilot, "enter")  # too early: explained
        titles = lambda: [n.title for n in app._notifications]  # noqa: E731
        await wait_for(pilot, lambda: "Not now" in titles(), what="the explanation")
        engine.set(kind="step", step_index=2, manual_remaining_ms=None)
        await wait_for(
            pilot,
            lambda: screen.snapshot is not None and screen.snapshot.step_index == 2,
            what="the next step shown",
        )
        # Withdrawn with the step it spoke of, not left to time out (5 s).
        assert "Not now" not in titles()


def test_the_alarm_banner_calls_the_practitioners_stop_an_emergency_stop() -> None:
    from controller.session.alarms import Alarm, AlarmCode, Priority
    from controller.ui.practitioner.alarm_banner import alarm_lines

    estop = Alarm(AlarmCode.DEVICE_FAULT, Priority.HIGH, "Output off.", 0.0, {"faults": ["ESTOP"]})
    shown = alarm_lines((estop,)).plain
    assert "Emergency stop" in shown and "Device fault" not in shown
    other = Alarm(AlarmCode.DEVICE_FAULT, Priority.HIGH, "Off.", 0.0, {"faults": ["OVERCURRENT"]})
    assert "Device fault" in alarm_lines((other,)).plain


# --- the big figures grow on a large screen (issue 11: "at 120×40 the big figures grow") ----


def test_tall_digits_keep_every_vertical_stroke_and_only_grow() -> None:
    from controller.ui.shared.tall_digits import digit_rows, tall_rows

    for text in ("40.0V", "03:59", "12:48", "--.-V", "0123456789"):
        small, tall = digit_rows(text), tall_rows(text)
        assert len(small) == 3 and len(tall) == 5
        assert [tall[0], tall[2], tall[4]] == small, "the glyphs themselves are unchanged"
        for joined, above, below in ((tall[1], small[0], small[1]), (tall[3], small[1], small[2])):
            assert set(joined) <= {" ", "│", "┃"}, joined
            for col, cell in enumerate(joined):
                if cell != " ":  # a joining stroke only where both neighbours reach it
                    assert above[col] not in " ─━" and below[col] not in " ─━", (text, col)
    # "1" in the light font: its stem goes on through both added rows.
    assert [row[1] for row in tall_rows("1")] == ["╮", "│", "│", "│", "┴"]


@pytest.mark.parametrize(("size", "rows"), [((80, 24), 3), ((120, 40), 5)])
async def test_the_big_figures_are_five_rows_tall_on_a_large_screen(
    store: RecordStore, size: tuple[int, int], rows: int
) -> None:
    engine = FakeEngine(snapshot(Phase.DELIVERING))
    app = make_app(store, engine=engine)
    async with app.run_test(size=size) as pilot:
        screen = await show_run_screen(app, pilot, engine)
        for name in ("#out-digits", "#set-digits", "#countdown"):
            digits = screen.query_one(name)
            await wait_for(pilot, lambda d=digits: d.size.height == rows, what=f"{name} {rows}")
