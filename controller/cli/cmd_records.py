"""``epm records``: list, show, export, verify and print (PDF) the clinic's session records.

Every listing and export marks simulated sessions (a ``SIM`` column, ``"simulated": true``) so
a session on the simulator is never mistaken for a real treatment. Exit codes: 0 ok, 1 an error
(unknown session, unusable data folder) or, for ``verify``, a tampered event log; 2 usage.

``list``, ``show``, ``export`` and ``verify`` take ``--server [URL]``: the same views of every
station's records as the clinic server holds them (:mod:`controller.server.records_view`), a
session addressed as ``STATION:ID``. The URL comes from the option, else ``server.url`` in the
configuration, as for ``epm sync``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from controller.cli.options import data_dir_parent

if TYPE_CHECKING:
    from controller.records import RecordStore, SessionDetail, SessionRecord, VerifyReport
    from controller.records.anchor import Anchor
    from controller.records.documents import ReportSettings

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: write it as YYYY-MM-DD, e.g. 2026-03-01"
        ) from None


def _session_id(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a session id: use the number in the ID column of `epm records list`"
        )
    return value


def _session_ref(text: str) -> int | str:
    """A session's number, or (with ``--server``) ``STATION:ID``, checked once the server is
    known to be meant."""
    return text.strip() if ":" in text else _session_id(text)


def _is_url(text: str) -> bool:
    return text.strip().lower().startswith(("postgresql://", "postgres://"))


class _ServerOption(argparse.Action):
    """``--server [URL]``. A value that is not a ``postgresql://`` URL is not the URL but the
    session that follows (``epm records show --server STATION:ID``): it is kept as
    ``server_target`` and the URL left to the configuration."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        text = values if isinstance(values, str) else ""
        if text and not _is_url(text):
            namespace.server_target = text.strip()
            text = ""
        setattr(namespace, self.dest, text)


def _add_server(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--server",
        nargs="?",
        action=_ServerOption,
        default=None,
        metavar="URL",
        help=f"{what} (URL: a postgresql:// URL without a password; default: server.url in "
        "config.yaml)",
    )
    parser.set_defaults(server_target=None, records_parser=parser)


def add_parser(subparsers: Any) -> None:
    common = data_dir_parent()
    parser = subparsers.add_parser(
        "records",
        help="list, show, export, verify and print (PDF reports) session records",
        description="Session records: list, show, export, verify the tamper-evident event log.",
    )
    sub = parser.add_subparsers(dest="records_command", metavar="ACTION", required=True)

    p_list = sub.add_parser("list", parents=[common], help="list sessions, newest first")
    p_list.add_argument("--client", metavar="CODE", help="only this client's sessions")
    p_list.add_argument("--since", type=_date, metavar="DATE", help="from this day (YYYY-MM-DD)")
    p_list.add_argument("--until", type=_date, metavar="DATE", help="to this day, included")
    p_list.add_argument("--format", choices=("table", "json"), default="table")
    _add_server(p_list, "every station's sessions from the clinic server")

    p_show = sub.add_parser("show", parents=[common], help="one session with steps and events")
    p_show.add_argument(
        "id",
        type=_session_ref,
        nargs="?",
        metavar="ID",
        help="the session's number (with --server: STATION:ID, as `list --server` shows it)",
    )
    p_show.add_argument("--format", choices=("text", "json"), default="text")
    _add_server(p_show, "the session STATION:ID from the clinic server")

    p_export = sub.add_parser(
        "export",
        parents=[common],
        help="export one session or all of them as JSON or CSV, or one session as FHIR",
        description=(
            "JSON: one document with sessions, steps, events (with hashes) and telemetry. "
            "CSV with --all: one row per session. CSV of one session: with --output NAME.csv "
            "four files NAME-session.csv, NAME-steps.csv, NAME-events.csv, NAME-telemetry.csv; "
            "on standard output the four tables, each after a line '# <table>'. CSV text cells "
            "starting with = + - @, a tab or a carriage return get a leading ' so that no "
            "spreadsheet runs them as formulas. FHIR (one session): an R4 transaction Bundle "
            "(Patient, Device, Procedure, an Observation per zone, Medication and "
            "MedicationAdministration) with ids that stay the same on every export; a simulated "
            "session only with --include-simulated."
        ),
    )
    which = p_export.add_mutually_exclusive_group()  # one of them: checked in run()
    which.add_argument("id", type=_session_ref, nargs="?", metavar="ID")
    which.add_argument("--all", action="store_true", help="every session")
    p_export.add_argument("--format", choices=("json", "csv", "fhir"), default="json")
    p_export.add_argument(
        "--include-simulated",
        action="store_true",
        help="with --format fhir: export a simulated session too, every resource tagged "
        "'simulated' (JSON and CSV always include simulated sessions, marked)",
    )
    p_export.add_argument(
        "--output",
        metavar="FILE",
        help="write here, not stdout: a new file, mode 0600, written whole or not at all; an "
        "existing file or symlink is refused (exit 1) unless --force",
    )
    p_export.add_argument(
        "--force",
        action="store_true",
        help="with --output: replace an existing file (a symlink is replaced itself, never "
        "written through)",
    )
    _add_server(p_export, "the session STATION:ID from the clinic server, as JSON")

    p_amend = sub.add_parser(
        "amend",
        parents=[common],
        help="correct a closed session's serum lot, serum name, practitioner or client name",
        description=(
            "Append a correction to a closed session. What was recorded stays as it was; the "
            "correction is its own hash-chained record, shown beside it."
        ),
    )
    p_amend.add_argument("id", type=_session_id, metavar="ID")
    field = p_amend.add_mutually_exclusive_group(required=True)
    field.add_argument("--serum-lot", metavar="LOT")
    field.add_argument("--serum-name", metavar="NAME")
    field.add_argument("--practitioner", metavar="NAME")
    field.add_argument("--client-name", metavar="NAME", help="the client's name (all sessions)")
    p_amend.add_argument("--by", required=True, metavar="NAME", help="who corrects the record")
    p_amend.add_argument("--reason", required=True, metavar="TEXT", help="why")

    p_report = sub.add_parser(
        "report",
        parents=[common],
        help="write a closed session's report (PDF), or with --handout the client's aftercare "
        "handout (A5)",
        description=(
            "Write a closed session's report (PDF: everything the record holds, the plot of "
            "output and current, alarms, course, chain) or, with --handout, the client's "
            "aftercare handout (A5, plain language, no clinical figures). The file's SHA-256 is "
            "chained as the session's report_written / handout_given event. A new file only: "
            "an existing one is never replaced. Clinic, station and paper come from the "
            "configuration (`epm config`)."
        ),
    )
    p_report.add_argument("id", type=_session_id, metavar="SESSION")
    p_report.add_argument(
        "--handout", action="store_true", help="the client's aftercare handout instead"
    )
    p_report.add_argument(
        "--output",
        metavar="FILE",
        help="default: session-N-report.pdf (session-N-handout.pdf) in the current folder; an "
        "existing file is never replaced (exit 1)",
    )
    p_report.add_argument(
        "--by",
        metavar="NAME",
        help="who writes it, recorded with the event (a handout: default the session's "
        "practitioner)",
    )
    p_report.add_argument(
        "--protocol",
        metavar="FILE",
        help="a record from before epm kept the aftercare and course with the session: the "
        "protocol file it ran (its SHA-256 must be the recorded one)",
    )

    p_course = sub.add_parser(
        "course",
        parents=[common],
        help="write a client's course report (PDF): every session of a protocol and what is left",
    )
    p_course.add_argument("client", metavar="CLIENT", help="the client's code")
    p_course.add_argument("protocol", metavar="PROTOCOL", help="the protocol id")
    p_course.add_argument(
        "--output",
        metavar="FILE",
        help="default: course-CLIENT-PROTOCOL.pdf in the current folder; an existing file is "
        "never replaced (exit 1)",
    )
    p_course.add_argument(
        "--protocol-file",
        metavar="FILE",
        help="the protocol file, for sessions recorded before epm kept the course with them",
    )

    p_verify = sub.add_parser(
        "verify", parents=[common], help="check the event log's hash chain (exit 1 if tampered)"
    )
    p_verify.add_argument("--format", choices=("text", "json"), default="text")
    _add_server(p_verify, "every station's chain and the clinic ledger on the clinic server")


def _usage_error(args: argparse.Namespace, message: str) -> int:
    """What argparse does for a usage error (usage line, message, exit 2), for the checks that
    wait until ``--server`` is known."""
    parser = getattr(args, "records_parser", None)
    if isinstance(parser, argparse.ArgumentParser):
        parser.print_usage(sys.stderr)
        print(f"{parser.prog}: error: {message}", file=sys.stderr)
    else:
        print(f"epm records: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _local_usage(args: argparse.Namespace) -> str | None:
    """Without ``--server``: a session must be a number, and given."""
    action = args.records_command
    target = getattr(args, "id", None)
    if isinstance(target, str):
        return (
            f"{target!r} addresses a session on the clinic server (STATION:ID): add --server, "
            "or give the session's number in these records"
        )
    if action == "show" and target is None:
        return "the following arguments are required: ID"
    if action == "export" and target is None and not args.all:
        return "one of the arguments ID --all is required"
    return None


def run(args: argparse.Namespace) -> int:
    from controller.records import RecordsError, RecordStore

    if getattr(args, "server", None) is not None:
        return _run_server(args)
    problem = _local_usage(args)
    if problem:
        return _usage_error(args, problem)
    try:
        # Reading never creates: a mistyped folder is said to hold no records, never shown
        # as an empty, intact record.
        with RecordStore.open(args.data_dir, exclusive=False, create=False) as store:
            action = args.records_command
            if action == "list":
                return _list(store, args, sys.stdout)
            if action == "show":
                return _show(store, args.id, args.format, sys.stdout)
            if action == "amend":
                return _amend(store, args, sys.stdout)
            if action == "export":
                return _export(store, args, sys.stdout)
            if action in ("report", "course"):
                return _document(store, args, sys.stdout)
            return _verify(store, args.format, sys.stdout)
    except RecordsError as exc:
        print(f"epm records: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


# -- list ------------------------------------------------------------------------------------------


def _table(rows: list[list[str]], out: TextIO) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for row in rows:
        out.write("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() + "\n")


def _list(store: RecordStore, args: argparse.Namespace, out: TextIO) -> int:

    sessions = store.list_sessions(client=args.client, since=args.since, until=args.until)
    if args.format == "json":
        out.write(json.dumps([s.to_dict() for s in sessions], indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    if not sessions:
        out.write(f"no sessions recorded in {store.data_dir} for this selection\n")
        return EXIT_OK
    _session_table(["ID"], [[str(s.id)] for s in sessions], sessions, out)
    out.write(f"{len(sessions)} session(s){_simulated_note(sessions)}\n")
    return EXIT_OK


_SESSION_COLUMNS = ["SIM", "STARTED", "CLIENT", "PROTOCOL", "OUTCOME", "PRACTITIONER", "DEVICE"]


def _session_table(
    first: list[str], leading: list[list[str]], sessions: Sequence[Any], out: TextIO
) -> None:
    """The sessions list, local or across stations: ``first`` columns (their cells in
    ``leading``, one list per session) before the columns every list has."""
    from controller.records.models import local

    rows = [first + _SESSION_COLUMNS]
    for lead, s in zip(leading, sessions, strict=True):
        rows.append(
            [
                *lead,
                "SIM" if s.simulated else "",
                local(s.started_at),
                s.client_code,
                f"{s.protocol_id} v{s.protocol_version}",
                s.outcome,
                s.practitioner,
                s.device_serial,
            ]
        )
    _table(rows, out)


def _simulated_note(sessions: Sequence[Any]) -> str:
    simulated = sum(1 for s in sessions if s.simulated)
    if not simulated:
        return ""
    return f"; {simulated} marked SIM ran on the simulator and are not real treatments"


# -- show ------------------------------------------------------------------------------------------


def _show(store: RecordStore, session_id: int, fmt: str, out: TextIO) -> int:
    detail = store.session_detail(session_id)
    report = store.verify_chain()
    if fmt == "json":
        data = detail.to_dict()
        data["simulated"] = detail.session.simulated
        data["chain"] = {"head": report.head_hash, "events": report.events, "ok": report.ok}
        out.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    _show_text(detail, out)
    out.write("\n".join(_chain_lines(report)) + "\n")
    return EXIT_OK


def _session_lines(s: SessionRecord) -> list[str]:
    from controller.records.models import local

    fmt = "%Y-%m-%d %H:%M:%S"
    lines = []
    if s.simulated:
        lines.append("*** SIMULATED SESSION (device SIM-...): not a real treatment ***")
    lines += [
        f"Session {s.id}: {s.outcome}" + (f" ({s.outcome_reason})" if s.outcome_reason else ""),
        f"  client        {s.client_code}" + (f" ({s.client_name})" if s.client_name else ""),
        f"  protocol      {s.protocol_id} version {s.protocol_version}: {s.protocol_title}",
        f"  sha256        {s.protocol_sha256}",
        f"  serum         {s.serum_name}, lot {s.serum_lot or '(not recorded)'}"
        + s.correction("serum_name")
        + s.correction("serum_lot"),
        f"  practitioner  {s.practitioner}" + s.correction("practitioner"),
        f"  device        {s.device_model} {s.device_serial}, firmware {s.device_firmware}, "
        f"boot {s.device_boot_id}, port {s.device_port or '-'}",
        f"  simulated     {'yes' if s.simulated else 'no'}",
        f"  started       {local(s.started_at, fmt)}",
        f"  ended         {local(s.ended_at, fmt) or '-'}",
        *(
            [f"  last known    {local(s.last_known_at, fmt)} (estimated from the last record)"]
            if s.last_known_at
            else []
        ),
        f"  planned zones {', '.join(s.planned_zones) or '-'}",
        *(
            [
                f"  planned time  {s.planned_delivery_ms} ms of delivery "
                f"in {len(s.planned_steps)} steps"
            ]
            if s.planned_delivery_ms is not None
            else []
        ),
        f"  checklist     {json.dumps(s.checklist, sort_keys=True, ensure_ascii=False)}",
    ]
    if s.notes:
        lines.append(f"  notes         {s.notes}")
    return lines


def _show_text(detail: SessionDetail, out: TextIO) -> None:
    from controller.records.models import local

    lines = _session_lines(detail.session)
    lines.append("")
    lines.append("Steps:")
    if not detail.steps:
        lines.append("  (none)")
    for st in detail.steps:
        what = f"  {st.index}.{st.attempt} {st.kind}" + (f" {st.zone}" if st.zone else "")
        if st.skipped:
            what += f": skipped ({st.skip_reason})"
        else:
            planned = f"{st.planned_ms} ms planned" if st.planned_ms is not None else "untimed"
            delivered = f"{st.delivered_ms} ms delivered" if st.delivered_ms is not None else "-"
            if st.delivered_estimated:
                delivered += " (estimated from the last telemetry)"
            what += f": {st.outcome or 'running'}, {delivered} of {planned}"
            if st.holds:
                what += f", {st.holds} hold(s) {st.hold_ms} ms"
            if st.amplitude_changes:
                what += f", {len(st.amplitude_changes)} amplitude change(s)"
        lines.append(what)
    lines.append("")
    lines.append("Events:")
    for e in detail.events:
        shown = dict(e.data)
        if isinstance(shown.get("seal"), dict):
            shown["seal"] = {"digest": shown["seal"].get("digest")}  # the parts: --format json
        data = json.dumps(shown, sort_keys=True, ensure_ascii=False)
        lines.append(f"  {e.seq:>4} {local(e.wall_time, '%H:%M:%S')} {e.kind:<18} {data}")
    t = detail.telemetry
    lines.append("")
    if t.rows:
        amplitude_v = (t.amplitude_max_dv or 0) / 10
        current_ma = (t.current_max_ua or 0) / 1000
        lines.append(
            f"Telemetry: {t.samples} samples in {t.rows} rows of 100 ms; max amplitude "
            f"{amplitude_v:.1f} V, max current {current_ma:.2f} mA, impedance "
            f"{t.impedance_min_ohm}–{t.impedance_max_ohm} Ω, max temperature "
            f"{(t.temperature_max_dc or 0) / 10:.1f} °C, {t.contact_changes} contact change(s), "
            f"faults seen 0x{t.faults_seen:04x}"
        )
    else:
        lines.append("Telemetry: none recorded")
    out.write("\n".join(lines) + "\n")


def _chain_lines(report: VerifyReport) -> list[str]:
    verdict = "verified" if report.ok else "VERIFY FAILED (`epm records verify` says where)"
    return ["", f"Records: chain head {report.head_hash}, {report.events} events; {verdict}"]


# -- export ----------------------------------------------------------------------------------------


def _export(store: RecordStore, args: argparse.Namespace, out: TextIO) -> int:
    from controller.records import export

    output = Path(args.output) if args.output else None
    if args.format == "fhir":
        return _export_fhir(store, args, output, out)
    if not args.all:
        store.get_session(args.id)  # a clear error for an unknown id, before any file is made
    report, saved = store.save_anchor("records export")
    _print_anchor(report, saved)
    if args.format == "json":
        ids = None if args.all else [args.id]
        document = export.export_json(store, ids, report=report)
        text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"

        def write(f: TextIO) -> None:
            f.write(text)

    elif args.all:
        sessions = list(reversed(store.list_sessions()))

        def write(f: TextIO) -> None:
            export.write_sessions_csv(sessions, f)

    else:
        if output is None:
            export.write_session_csv_stream(store, args.id, out, report=report)
            return EXIT_OK
        return _write_files(
            args, lambda: export.write_session_csv_files(store, args.id, output, replace=args.force)
        )
    if output is None:
        write(out)
        return EXIT_OK
    return _write_files(args, lambda: [export.write_private(output, write, replace=args.force)])


def _export_fhir(
    store: RecordStore, args: argparse.Namespace, output: Path | None, out: TextIO
) -> int:
    """One session as a FHIR R4 transaction Bundle (controller/records/fhir.py)."""
    from controller.records import export, fhir

    if args.all:
        print(
            "epm records: error: FHIR is exported one session at a time (one Bundle per "
            "session): give the session's ID instead of --all",
            file=sys.stderr,
        )
        return EXIT_USAGE
    # Built before anything is printed or written: a running, simulated or unknown session is
    # refused (exit 1) with nothing made.
    text = fhir.bundle_json(store, args.id, include_simulated=args.include_simulated)
    report, saved = store.save_anchor("records export")
    _print_anchor(report, saved)
    if output is None:
        out.write(text)
        return EXIT_OK

    def write(f: TextIO) -> None:
        f.write(text)

    return _write_files(args, lambda: [export.write_private(output, write, replace=args.force)])


def _print_anchor(report: VerifyReport, saved: Anchor | None) -> None:
    """Every export prints the chain's head and event count: kept with the export (on paper,
    in the clinic system), they are what shows a later rewrite or truncation."""
    if saved is not None:
        print(
            f"{saved.line()} (verified; saved as the anchor in the data folder: keep this line "
            "with the export)",
            file=sys.stderr,
        )
    else:
        print(
            f"chain head {report.head_hash}, {report.events} events — VERIFY FAILED, no anchor "
            f"saved: {report.reason} (`epm records verify` lists every problem)",
            file=sys.stderr,
        )


def _write_files(args: argparse.Namespace, write: Callable[[], list[Path]]) -> int:
    """Run ``write`` (which writes the export's files); report what it wrote, or why not."""
    from controller.records.export import OutputExistsError

    try:
        paths = write()
    except OutputExistsError as exc:
        names = ", ".join(str(p) for p in exc.paths)
        one = len(exc.paths) == 1
        print(
            f"epm records: error: {names} already {'exists' if one else 'exist'}; nothing was "
            f"written. Use --force to replace {'it' if one else 'them'}, or give another name "
            "with --output.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except OSError as exc:  # a missing folder, no permission, a full disk ...
        print(
            f"epm records: error: could not write the export to {args.output}: "
            f"{exc.strerror or exc}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    for path in paths:
        print(f"wrote {path}", file=sys.stderr)
    return EXIT_OK


# -- amend ----------------------------------------------------------------------------------------


def _amend(store: RecordStore, args: argparse.Namespace, out: TextIO) -> int:
    from controller.records import InvalidRecordError

    session = store.get_session(args.id)
    if session.is_open:
        raise InvalidRecordError(
            f"session {args.id} is still running: correct it once it has ended"
        )
    if args.client_name is not None:
        event = store.amend_client_name(
            session.client_code, args.client_name, by=args.by, reason=args.reason
        )
        what = f"client {session.client_code}'s name"
    else:
        field = next(
            f for f in ("serum_lot", "serum_name", "practitioner") if getattr(args, f) is not None
        )
        event = store.amend_session(
            args.id, field, getattr(args, field), by=args.by, reason=args.reason
        )
        what = f"session {args.id}'s {field.replace('_', ' ')}"
    out.write(f"corrected {what}: recorded as event {event.id} (the original is kept)\n")
    return EXIT_OK


# -- report, handout, course report ----------------------------------------------------------------


def _report_settings(data_dir: str | None) -> ReportSettings:
    """Clinic, contact, station and paper from the configuration (``epm config``)."""
    from controller.config import load_config
    from controller.records.documents import ReportSettings

    config = load_config(data_dir)
    return ReportSettings(
        clinic_name=str(config.get("clinic.name") or ""),
        clinic_contact=str(config.get("clinic.contact") or ""),
        station_name=str(config.get("station.name") or ""),
        paper=str(config.get("report.paper") or "A4"),
    )


def _document(store: RecordStore, args: argparse.Namespace, out: TextIO) -> int:
    """``report`` (a session report or handout) and ``course``: a new PDF file, never one that
    exists; the report and handout are chained as the session's events."""
    from controller.config import ConfigError
    from controller.records.course_report import write_course_report
    from controller.records.export import OutputExistsError
    from controller.records.handout import write_handout
    from controller.records.report import write_session_report

    if args.records_command == "course":
        default = f"course-{args.client}-{args.protocol}.pdf"
    else:
        store.get_session(args.id)  # an unknown id says so before anything else
        default = f"session-{args.id}-{'handout' if args.handout else 'report'}.pdf"
    path = Path(args.output) if args.output else Path(default)
    try:
        settings = _report_settings(args.data_dir)
        if args.records_command == "course":
            result = write_course_report(
                store, args.client, args.protocol, settings, path, protocol_file=args.protocol_file
            )
        elif args.handout:
            result = write_handout(
                store, args.id, settings, path, protocol_file=args.protocol, by=args.by
            )
        else:
            result = write_session_report(store, args.id, settings, path, by=args.by)
    except ConfigError as exc:
        print(f"epm records: error: the configuration cannot be used: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except OutputExistsError:
        print(
            f"epm records: error: {path} already exists; nothing was written. A report is never "
            "replaced: give another name with --output FILE.",
            file=sys.stderr,
        )
        return EXIT_FAILED
    except OSError as exc:  # a missing folder, no permission, a full disk ...
        print(
            f"epm records: error: could not write {path}: {exc.strerror or exc}; nothing was "
            "written",
            file=sys.stderr,
        )
        return EXIT_FAILED
    pages = f"{result.pages} page{'s' if result.pages != 1 else ''}, {result.paper}"
    out.write(f"wrote {result.path} ({pages}), SHA-256 {result.sha256}\n")
    if result.event is not None:
        out.write(
            f"recorded as event {result.event.id} ({result.event.kind}) of session "
            f"{result.event.session_id}; chain head {result.event.hash}\n"
        )
    return EXIT_OK


# -- verify ----------------------------------------------------------------------------------------


def _verify(store: RecordStore, fmt: str, out: TextIO) -> int:
    report = store.verify_chain()
    if fmt == "json":
        out.write(json.dumps(report.to_dict(), indent=2) + "\n")
    else:
        out.write(report.describe() + "\n")
        if not report.ok:
            out.write(
                "The records were changed outside epm. Keep this database as evidence (copy the "
                "whole data folder) and compare it with your last export or backup.\n"
            )
    return EXIT_OK if report.ok else EXIT_FAILED


# -- --server: every station's records on the clinic server ----------------------------------------


def _server_usage(args: argparse.Namespace) -> str | None:
    """What is wrong with a ``--server`` command line, before anything is connected."""
    from controller.server.records_view import parse_address

    action = args.records_command
    target = args.server_target
    number = getattr(args, "id", None)
    if target is not None and number is not None:
        return f"give one session, not {target!r} and {number!r}"
    if target is None and isinstance(number, str):
        target = number
    if action in ("list", "verify"):
        if target is not None:
            return f"--server takes a postgresql:// URL (or nothing: server.url), not {target!r}"
        return None
    if action == "export" and args.all:
        return (
            "--server exports one session at a time: give STATION:ID instead of --all (as "
            "`epm records list --server` shows it)"
        )
    if action == "export" and args.format != "json":
        return (
            f"--server exports JSON only, not {args.format.upper()}: run `epm records export "
            f"ID --format {args.format}` on the station that recorded the session"
        )
    if target is None:
        if isinstance(number, int):
            return (
                f"with --server a session is STATION:ID, not {number}: the station's name (or "
                "at least 8 characters of its id), a colon and the session's number, as "
                "`epm records list --server` shows it"
            )
        return "with --server give the session as STATION:ID (see `epm records list --server`)"
    try:
        parse_address(target)
    except ValueError as exc:
        return str(exc)
    args.server_target = target
    return None


def _server_url(args: argparse.Namespace) -> str:
    from controller.config import load_config
    from controller.server import ServerError

    url = (args.server or "").strip()
    if not url:
        url = str(load_config(args.data_dir).server_url or "").strip()
    if not url:
        raise ServerError(
            "no clinic server: give its URL (epm records "
            f"{args.records_command} --server postgresql://USER@HOST/DB?sslmode=verify-full) "
            "or set it once with `epm config set server.url URL`"
        )
    return url


def _run_server(args: argparse.Namespace) -> int:
    import psycopg

    from controller.config import ConfigError
    from controller.server import ServerError
    from controller.server.records_view import check_server
    from controller.server.schema import connect

    problem = _server_usage(args)
    if problem:
        return _usage_error(args, problem)
    try:
        conn = connect(_server_url(args))
        try:
            check_server(conn)
            action = args.records_command
            if action == "list":
                return _server_list(conn, args, sys.stdout)
            if action == "show":
                return _server_show(conn, args, sys.stdout)
            if action == "export":
                return _server_export(conn, args, sys.stdout)
            return _server_verify(conn, args.format, sys.stdout)
        finally:
            conn.close()
    except (ConfigError, ServerError) as exc:
        print(f"epm records: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        print(f"epm records: error: the clinic server failed: {first}", file=sys.stderr)
        return EXIT_FAILED


def _server_list(conn: Any, args: argparse.Namespace, out: TextIO) -> int:
    from controller.server.records_view import list_sessions

    sessions = list_sessions(conn, client=args.client, since=args.since, until=args.until)
    if args.format == "json":
        out.write(json.dumps([s.to_dict() for s in sessions], indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    if not sessions:
        out.write("no sessions on the clinic server for this selection\n")
        return EXIT_OK
    _session_table(
        ["STATION", "ID"], [[s.station_label, str(s.session_id)] for s in sessions], sessions, out
    )
    rooms = len({s.station_id for s in sessions})
    out.write(f"{len(sessions)} session(s) from {rooms} station(s){_simulated_note(sessions)}\n")
    out.write("show one with `epm records show --server STATION:ID`, e.g. " + sessions[0].address)
    out.write("\n")
    return EXIT_OK


def _server_show(conn: Any, args: argparse.Namespace, out: TextIO) -> int:
    from controller.records.models import local
    from controller.server.records_view import session_document, session_view

    if args.format == "json":
        document = session_document(conn, args.server_target)
        out.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
        return EXIT_OK
    view = session_view(conn, args.server_target)
    s = view.session
    started = view.started
    fmt = "%Y-%m-%d %H:%M:%S"
    lines = []
    if s.simulated:
        lines.append("*** SIMULATED SESSION (device SIM-...): not a real treatment ***")
    reason = view.outcome_reason
    station = f"{s.station_name} ({s.station_id})" if s.station_name else s.station_id
    lines += [
        f"Session {s.address}: {s.outcome}" + (f" ({reason})" if reason else ""),
        f"  station       {station}",
        f"  session       {s.session_id} (the station's own number)",
        f"  client        {s.client_code}",
        f"  protocol      {s.protocol_id} version {s.protocol_version}"
        + (f": {started['protocol_title']}" if started.get("protocol_title") else ""),
        f"  practitioner  {s.practitioner or '-'}",
        f"  device        {started.get('device_model') or ''} {s.device_serial or '-'}".rstrip(),
        f"  simulated     {'yes' if s.simulated else 'no'}",
        f"  started       {local(s.started_at, fmt)}",
        f"  ended         {local(s.ended_at, fmt) or '-'}",
        "",
        "Events (as the clinic server holds them):",
    ]
    for e in view.events:
        try:
            shown = json.loads(e.data)
        except ValueError:
            shown = None
        if isinstance(shown, dict):
            if isinstance(shown.get("seal"), dict):
                shown["seal"] = {"digest": shown["seal"].get("digest")}  # the parts: JSON
            data = json.dumps(shown, sort_keys=True, ensure_ascii=False)
        else:
            data = e.data
        when = local(e.wall_time, "%H:%M:%S") if _parses(e.wall_time) else e.wall_time
        lines.append(f"  {e.seq:>4} {when} {e.kind:<18} {data}")
    lines.append("")
    if view.mismatched:
        positions = ", ".join(str(p) for p in view.mismatched)
        lines.append(
            f"Server copy: {len(view.events)} events; HASH MISMATCH at position(s) {positions} "
            "(changed on the server: `epm records verify --server` says more)"
        )
    else:
        lines.append(
            f"Server copy: {len(view.events)} events, each hash matches its content (the "
            "whole chain: `epm records verify --server`). Steps and telemetry stay in the "
            "station's own records."
        )
    out.write("\n".join(lines) + "\n")
    return EXIT_OK


def _parses(text: str) -> bool:
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


def _server_export(conn: Any, args: argparse.Namespace, out: TextIO) -> int:
    from controller.records import export
    from controller.server.records_view import session_document

    document = session_document(conn, args.server_target)
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    events = len(document["events"])
    where = f"{document['session']['address']} (station {document['station_id']})"
    if document["hashes_match_content"]:
        note = f"{events} events from the clinic server, each hash matching its content"
    else:
        note = (
            f"{events} events from the clinic server; SOME HASHES DO NOT MATCH their content "
            "(`epm records verify --server` says where)"
        )
    print(f"session {where}: {note}", file=sys.stderr)
    if not args.output:
        out.write(text)
        return EXIT_OK

    def write(f: TextIO) -> None:
        f.write(text)

    output = Path(args.output)
    return _write_files(args, lambda: [export.write_private(output, write, replace=args.force)])


def _server_verify(conn: Any, fmt: str, out: TextIO) -> int:
    from controller.server.records_view import verify_server

    report = verify_server(conn)
    if fmt == "json":
        out.write(json.dumps(report.to_dict(), indent=2) + "\n")
        return EXIT_OK if report.ok else EXIT_FAILED
    lines = []
    if not report.stations:
        lines.append("no stations on the clinic server yet (nothing synced)")
    for st in report.stations:
        who = f"station {st.name or '(no name)'} ({st.station_id})"
        if st.broken_position is not None:
            lines.append(
                f"{who}: {st.events} events, chain BROKEN at position {st.broken_position}: "
                f"{st.reason}"
            )
            continue
        lines.append(f"{who}: {st.events} events, chain intact")
        lines += [f"  sessions table WRONG: {p}" for p in st.session_problems]
    ledger = report.ledger
    if ledger.ok:
        lines.append(f"clinic ledger: {ledger.events} events, chain intact")
    else:
        lines.append(
            f"clinic ledger: {ledger.events} events, chain BROKEN at position "
            f"{ledger.broken_position}: {ledger.reason}"
        )
    if report.ok:
        lines.append("the clinic server's records verify")
    else:
        lines.append(
            "The clinic server's copy was changed after it was received. Keep the database as "
            "evidence (a dump of it) and compare with each station named above: "
            "`epm records verify` there checks the station's own records."
        )
    out.write("\n".join(lines) + "\n")
    return EXIT_OK if report.ok else EXIT_FAILED
