"""``epm sim``: run the EPM-1 simulator on a pty (default) or a TCP port until interrupted.

Prints one JSON line on stdout once the port is ready, e.g.
``{"url": "/tmp/epm-sim-x/ttyEPM0", "control": "tcp://127.0.0.1:40123",
"serial": "SIM-123456", "boot_id": 4242, ...}``,
and logs to stderr. SIGINT or SIGTERM stops it cleanly (exit 0). A bad scenario file or option
is reported with its location and exits 2.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from types import FrameType

EXIT_OK = 0
EXIT_RUNTIME = 1
EXIT_USAGE = 2

HANDPIECE_CHOICES = ("scalp_roller", "flat_probe", "comb", "none")


def add_parser(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = subparsers.add_parser(
        "sim",
        help="run the EPM-1 simulator on a pty or TCP port",
        description=(
            "Run a simulated EPM-1 that follows the device interface document. By default it "
            "serves a pty (open the printed path with epm, miniterm or screen); --tcp serves "
            "socket://127.0.0.1:PORT instead. Prints one JSON line with the URL once ready; "
            "stop with Ctrl-C. See docs/simulator.md."
        ),
    )
    p.add_argument("--tcp", type=int, metavar="PORT", help="serve TCP on 127.0.0.1:PORT (0: any)")
    p.add_argument(
        "--pty-link",
        metavar="PATH",
        help="where to put the stable symlink to the pty (default: a private temp folder)",
    )
    p.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="run step time and physics N times faster (link timers stay real; default 1)",
    )
    p.add_argument("--seed", type=int, help="random seed (default: the scenario's, else 0)")
    p.add_argument("--scenario", metavar="FILE", help="scenario YAML (faults, skin, practitioner)")
    p.add_argument("--handpiece", choices=HANDPIECE_CHOICES, help="handpiece attached at start")
    p.add_argument("--baud", type=int, help="baud rate for --pace (115200, 230400, ...)")
    p.add_argument(
        "--pace", action="store_true", help="send bytes no faster than --baud (bytes×10/baud)"
    )
    p.add_argument(
        "--control",
        metavar="PORT|PATH",
        default="0",
        help=(
            "control socket: a TCP port on 127.0.0.1 (default 0: any free port) or a Unix "
            "socket path; 'none' for no control socket"
        ),
    )
    p.add_argument(
        "--log-level",
        default="info",
        choices=("debug", "info", "warning", "error"),
        help="stderr log level (default info)",
    )


def _usage_error(message: str) -> int:
    print(f"epm sim: {message}", file=sys.stderr)
    return EXIT_USAGE


def run(args: argparse.Namespace) -> int:
    from simulator import ScenarioError, Simulator, load_scenario

    if args.pace and args.baud is None:
        return _usage_error("--pace needs --baud (the rate to pace at), e.g. --baud 115200")
    if args.baud is not None and args.baud <= 0:
        return _usage_error(f"--baud {args.baud} must be a positive rate such as 115200")
    if not 0 < args.speed <= 1000:
        return _usage_error(f"--speed {args.speed:g} must be above 0 and at most 1000")
    if args.tcp is not None and not 0 <= args.tcp <= 65535:
        return _usage_error(f"--tcp {args.tcp} is not a TCP port (0..65535)")
    if args.tcp is not None and args.pty_link:
        return _usage_error("--pty-link only applies to the pty; drop it or drop --tcp")
    control: int | str | None = None
    if args.control is not None and args.control.lower() != "none":
        control = int(args.control) if args.control.isdigit() else args.control
        if isinstance(control, int) and control > 65535:
            return _usage_error(f"--control {control} is not a TCP port (0..65535)")
    scenario = None
    if args.scenario:
        try:
            scenario = load_scenario(args.scenario)
        except ScenarioError as exc:
            print(f"epm sim: scenario {args.scenario} has problems:", file=sys.stderr)
            for problem in exc.problems:
                print(f"  {problem}", file=sys.stderr)
            return EXIT_USAGE
    logging.basicConfig(
        level=getattr(logging, args.log_level.upper()),
        stream=sys.stderr,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    try:
        sim = Simulator(
            seed=args.seed,
            speed=args.speed,
            handpiece=args.handpiece,
            scenario=scenario,
            endpoint="tcp" if args.tcp is not None else "pty",
            tcp_port=args.tcp or 0,
            pty_link=args.pty_link,
            baud=args.baud,
            pace=args.pace,
            control=control,
        )
    except OSError as exc:
        print(f"epm sim: cannot open the port or control socket: {exc}", file=sys.stderr)
        return EXIT_RUNTIME
    except ValueError as exc:
        return _usage_error(str(exc))

    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        endpoint = sim.endpoint
        ready = {
            "url": sim.url(),
            "control": sim.control_address,
            "serial": sim.serial_number,
            "boot_id": sim.boot_id,
            "endpoint": "tcp" if args.tcp is not None else "pty",
            "pty": getattr(endpoint, "slave_name", None),
            "speed": sim.speed,
            "seed": sim.seed,
        }
        print(json.dumps(ready), flush=True)
        logging.getLogger("epm.sim").info("ready: %s", ready["url"])
        while not stop.wait(0.2):
            if not sim.running:
                print(
                    "epm sim: the simulator stopped unexpectedly (see the log above)",
                    file=sys.stderr,
                )
                return EXIT_RUNTIME
        return EXIT_OK
    finally:
        sim.close()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        logging.getLogger("epm.sim").info("stopped")
