"""The event kinds the session engine and the records write, and what each one means.

Kinds are free strings (a new kind needs no migration), but these are the ones epm uses; keep
this table and docs/records.md in step. ``data`` is a JSON object; the keys listed are the ones
the writer is expected to include.
"""

from __future__ import annotations

EVENT_KINDS: dict[str, str] = {
    "session_started": "written by begin_session with everything the session started with",
    "state": "the engine's session state changed (data: old, new)",
    "command_sent": "written BEFORE a request goes to the device (data: command, seq, values)",
    "command_result": "the device's reply to a request (data: command, result: ack/nak/refused/"
    "stale/outcome_unknown/lost, code, detail; stale: decided_epoch, epoch)",
    "device_event": "an EVENT frame from the device (data: event, arg, t_ms, dseq)",
    "alarm_raised": "the safety supervisor raised an alarm (data: alarm, priority, message)",
    "alarm_cleared": "an alarm's condition is gone (data: alarm)",
    "alarm_acknowledged": "the practitioner acknowledged an alarm (data: alarm, by)",
    "amplitude_change": "written by record_amplitude_change, before SET_AMPLITUDE is sent "
    "(data: index, from_dv, to_dv, source)",
    "hold_start": "the device went to HOLD (contact lost) in a step (data: index, t_ms)",
    "hold_end": "written by record_hold when a hold ended (data: index, held_ms)",
    "step_start": "written by record_step_start, before the step's START (data: index, attempt, "
    "kind, zone, planned_ms)",
    "step_end": "written by record_step_end (data: index, attempt, outcome, delivered_ms from the "
    "device's step_elapsed_ms)",
    "step_skipped": "written by record_skip (data: index, reason)",
    "link_lost": "the serial link was lost (data: reason, last_phase, occurred_at, epoch)",
    "reconnected": "the link is back and STATUS was read (data: status, occurred_at, epoch)",
    "device_restarted": "the device's boot_id changed or its clock went back, also while the "
    "port was closed (data: old_boot_id, new_boot_id, occurred_at)",
    "unit_changed": "after a reconnect another unit answered; the session ends interrupted "
    "(data: expected, found, occurred_at)",
    "end_check": "the session's end checked the device: seen inactive, or another unit on the "
    "port (data: result, status); otherwise an estop event follows",
    "outcome_unknown": "a START/RESUME/SET_AMPLITUDE got no reply before the link was lost "
    "(data: command, seq)",
    "warning": "something the practitioner was warned about (data: message)",
    "estop": "emergency stop: written right AFTER the ESTOP bytes went out, by the engine's "
    "thread (the device is made safe first; data: source, reason, bytes_written, phase)",
    "alarm_updated": "a shown alarm's message or detail changed (data: alarm, message)",
    "alarm_resolved": "a latched alarm's condition is gone; it stays shown until acknowledged "
    "(data: alarm)",
    "notice": "a practitioner action was refused or clamped, with the limit and why "
    "(data: action, message, limit)",
    "request": "a practitioner's action (or a headless run's), recorded before the engine "
    "carries it out (data: action, reason, by, phase, step); acknowledgements and intensity "
    "changes are recorded as alarm_acknowledged and amplitude_change",
    "preflight": "the preflight checks' result (data: ok, refusals, warnings)",
    "link_event": "a link-level event (dseq gap, status refreshed, supervision lost, ...) "
    "(data: kind, message, occurred_at, epoch)",
    "engine_error": "the engine hit an unexpected error and made the device safe (data: error)",
    "session_end": "written by end_session and recover_interrupted: the session's outcome "
    "(data: outcome, reason, summary, seal: the digest of the session's rows, steps and "
    "telemetry, after which they never change; for interrupted: last_event, last_telemetry, "
    "estimated: last_known_at, step, delivered_ms)",
    "note": "written by set_notes (data: notes); the latest one is the notes shown",
    "training_fault": "simulator only: a trainer injected a fault from the training panel, "
    "recorded before it took effect (data: fault: a simulator catalogue name, or clear for "
    "ending the injected conditions; title: in plain words; params; by: trainer)",
    "amendment": "a closed session's serum lot, serum name or practitioner corrected, shown "
    "beside the recorded value (data: field, value, original, by, reason)",
    "report_written": "a session report (PDF) was written from the closed session's record "
    "(data: document, sha256, file: its name, pages, paper, by); the report shows the record up "
    "to its last event before any report_written",
    "handout_given": "the client's aftercare handout (PDF) was written from the closed session's "
    "record (data: document, sha256, file, pages, paper, at, by)",
    # Events of the records as a whole (session_id is empty):
    "approval": "epm approve recorded an approval (data: id, sha256, protocol_id, "
    "protocol_version, approved_by, approved_at, file_path); only chained approvals are honoured",
    "approvals_migrated": "the upgrade to full coverage listed the approvals recorded before "
    "it, trusted as of the upgrade (data: approvals, note, sessions_before)",
    "client_amended": "a client's name set or corrected once the client has a closed session "
    "(data: code, name, previous, by, reason)",
    "revocation": "epm approve --revoke on this station withdrew an approval (data: sha256, "
    "protocol_id, protocol_version, revoked_by, revoked_at, reason); the file never runs on a "
    "real device again",
    # Received from the clinic server's ledger (controller/server/pull.py); data: clinic_id,
    # server_position, server_hash, station_id, made_by, created_at, data (the ledger row's):
    "received_approval": "an approval made on the clinic server (data.data: sha256, "
    "protocol_id, protocol_version, approved_by, file_name); honoured like one made here",
    "received_revocation": "a revocation made on the clinic server (data.data: sha256, "
    "protocol_id, protocol_version, revoked_by, reason)",
    "received_client": "a client code a station claimed, with its name (data.data: code, name)",
    "received_client_conflict": "the server flagged a client code claimed under two names "
    "(data.data: code, names, stations); no session under it joins another room's course",
    "received_client_resolved": "a technician said which name a flagged code belongs to "
    "(data.data: code, name, by, reason)",
}
