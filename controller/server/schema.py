"""The clinic server's schema, as an ordered list of migrations, and ``epm server init``.

``schema_version`` (one row) holds the number of migrations applied. Each missing migration runs
in its own transaction together with the new version, under a transaction-level advisory lock,
so two ``epm server init`` at once apply it once and a failure leaves the previous version. A
server whose version is higher than the last migration here was set up by a newer epm and is
refused before anything is written. Never edit a shipped migration; append one.

What each later version adds is written beside it below (2: the server checks each event's
chain link; 3: the clinic ledger ``clinic_events`` and the derived ``sessions``, the v1
``approvals``, ``revocations`` and ``clients`` becoming views of the ledger; 4: ``documents``;
5: a station's login role appends only its own chain; 6: ``sessions`` guarded; 7: arrival
times, a narrower trigger; 8: client conflicts on each station's latest claim).

Tables (version 1), kept minimal:

- ``stations``: ``station_id`` (the station's UUID4, see ``RecordStore.station_id``), ``name``
  (the room's label, may be empty), ``first_seen``.
- ``events``: each station's hash-chained events as the station has them: ``station_id``,
  ``position`` (the event's id in the station's chain: 1, 2, 3 …), ``session_id`` (the
  station's own session number; NULL for events of the records as a whole), ``seq``,
  ``wall_time`` (the station's text, as hashed), ``mono_ms``, ``kind``, ``data`` (the canonical
  JSON text, as hashed: text, not jsonb, so the hash can be checked again), ``prev_hash``,
  ``hash``, ``received_at``. Primary key (station_id, position). A trigger refuses UPDATE and
  DELETE for every role, the owner included.
- ``approvals``: a protocol file approved for the clinic: ``sha256`` (unique), ``protocol_id``,
  ``protocol_version``, ``approved_by``, ``approved_at``, ``station_id`` (where it was
  approved; NULL: on the server).
- ``revocations``: an approval withdrawn: ``sha256``, ``revoked_by``, ``revoked_at``,
  ``reason``.
- ``clients``: a client code seen by the clinic: ``code`` (primary key), ``first_seen``.

Roles (NOLOGIN group roles: grant them to login roles): ``epm_station`` may SELECT everything
and INSERT into ``stations`` and ``events`` only; ``epm_technician`` may also INSERT into
``approvals`` and ``revocations``. Neither may UPDATE or DELETE anything.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from controller.server import ServerError, ServerSchemaTooNewError
from controller.server.url import connection_problem


class ServerMigration(NamedTuple):
    version: int
    description: str
    script: str


_V1 = """
CREATE TABLE stations (
    station_id  uuid PRIMARY KEY,
    name        text NOT NULL DEFAULT '',
    first_seen  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE events (
    station_id   uuid NOT NULL REFERENCES stations(station_id),
    position     bigint NOT NULL CHECK (position >= 1),
    session_id   bigint,
    seq          bigint NOT NULL CHECK (seq >= 1),
    wall_time    text NOT NULL,
    mono_ms      bigint NOT NULL,
    kind         text NOT NULL,
    data         text NOT NULL,
    prev_hash    char(64) NOT NULL,
    hash         char(64) NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (station_id, position)
);
CREATE INDEX events_by_kind ON events (kind);

CREATE FUNCTION epm_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the event log is append-only: events are never changed or deleted';
END;
$$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON events
    FOR EACH ROW EXECUTE FUNCTION epm_events_append_only();

CREATE TABLE approvals (
    sha256            char(64) PRIMARY KEY,
    protocol_id       text NOT NULL,
    protocol_version  integer NOT NULL,
    approved_by       text NOT NULL,
    approved_at       timestamptz NOT NULL DEFAULT now(),
    station_id        uuid REFERENCES stations(station_id)
);

CREATE TABLE revocations (
    sha256      char(64) PRIMARY KEY REFERENCES approvals(sha256),
    revoked_by  text NOT NULL,
    revoked_at  timestamptz NOT NULL DEFAULT now(),
    reason      text NOT NULL
);

CREATE TABLE clients (
    code        text PRIMARY KEY,
    first_seen  timestamptz NOT NULL DEFAULT now()
);
"""

#: The server itself refuses an event that does not continue its station's chain: the next
#: position, linked by ``prev_hash`` to the hash the server holds there (64 zeros at position
#: 1). ``epm sync`` checks this and the hashes before it inserts; this trigger makes the link a
#: rule of the server, so a client that skips those checks cannot append a broken chain. A row
#: whose (station, position) is already held passes on to ``ON CONFLICT DO NOTHING``.
_V2 = """
CREATE FUNCTION epm_events_link() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    last_position bigint;
    last_hash char(64);
BEGIN
    IF EXISTS (SELECT 1 FROM events
               WHERE station_id = NEW.station_id AND position = NEW.position) THEN
        RETURN NEW;
    END IF;
    SELECT position, hash INTO last_position, last_hash FROM events
        WHERE station_id = NEW.station_id ORDER BY position DESC LIMIT 1;
    IF last_position IS NULL THEN
        IF NEW.position <> 1 OR NEW.prev_hash <> repeat('0', 64) THEN
            RAISE EXCEPTION 'station % chain broken at position %: a chain starts at position 1 '
                'with a zero prev_hash', NEW.station_id, NEW.position;
        END IF;
    ELSIF NEW.position <> last_position + 1 OR NEW.prev_hash <> last_hash THEN
        RAISE EXCEPTION 'station % chain broken at position %: it does not continue position % '
            '(hash %)', NEW.station_id, NEW.position, last_position, last_hash;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER events_link BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION epm_events_link();
"""

#: Version 3: the clinic's own ledger and the sessions of every station.
#:
#: ``clinic_events`` is the clinic's hash chain, kept by the server: approvals, revocations,
#: client codes claimed by a station, conflicts between two claims, and their resolutions.
#: Only :func:`epm_clinic_append` writes it (SECURITY DEFINER: no role may INSERT directly),
#: under one advisory lock, so positions commit in order; each row's hash is
#: ``sha256(prev_hash \n position \n kind \n created_at \n station_id \n data)`` (hex; an
#: empty station id for the server's own rows), checked again by every station that pulls
#: it. A technician (member of ``epm_technician``) may append approvals, revocations and
#: resolutions; a station (``epm_station``) only its clients. Appending what the ledger
#: already says (the same approval, revocation or claim) returns the position it has.
#:
#: ``clinic`` holds the server's own id (a UUID made once): a station's received events name it,
#: so a station pointed at another server never mixes the two ledgers' positions.
#:
#: ``sessions`` is derived from ``events`` by a trigger: one row per station session, its
#: outcome set by ``session_end``; ``txid`` is the transaction that last changed the row, so
#: a station pulls changes in order and none committed late is missed (see
#: :mod:`controller.server.sync`). The v1 tables ``approvals``, ``revocations`` and
#: ``clients`` become views of the ledger.
_V3 = """
CREATE TABLE clinic (
    singleton  integer PRIMARY KEY CHECK (singleton = 1),
    clinic_id  uuid NOT NULL DEFAULT gen_random_uuid()
);
INSERT INTO clinic (singleton) VALUES (1);

DROP TABLE revocations;
DROP TABLE approvals;
DROP TABLE clients;

CREATE TABLE clinic_events (
    position    bigint PRIMARY KEY CHECK (position >= 1),
    kind        text NOT NULL,
    data        text NOT NULL,
    station_id  uuid REFERENCES stations(station_id),
    made_by     text NOT NULL,
    created_at  text NOT NULL,
    prev_hash   char(64) NOT NULL,
    hash        char(64) NOT NULL
);
CREATE INDEX clinic_events_by_kind ON clinic_events (kind);
CREATE TRIGGER clinic_events_append_only BEFORE UPDATE OR DELETE ON clinic_events
    FOR EACH ROW EXECUTE FUNCTION epm_events_append_only();

CREATE FUNCTION epm_norm(value text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
    SELECT nullif(lower(regexp_replace(btrim(coalesce(value, '')), '\\s+', ' ', 'g')), '')
$$;

CREATE FUNCTION epm_clinic_insert(p_kind text, p_data text, p_station uuid) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    last_position bigint;
    last_hash char(64);
    at text := to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"');
    new_position bigint;
BEGIN
    SELECT position, hash INTO last_position, last_hash FROM clinic_events
        ORDER BY position DESC LIMIT 1;
    new_position := coalesce(last_position, 0) + 1;
    last_hash := coalesce(last_hash, repeat('0', 64));
    INSERT INTO clinic_events (position, kind, data, station_id, made_by, created_at,
                               prev_hash, hash)
    VALUES (new_position, p_kind, p_data, p_station, session_user, at, last_hash,
            encode(sha256(convert_to(last_hash || E'\\n' || new_position::text || E'\\n' ||
                p_kind || E'\\n' || at || E'\\n' || coalesce(p_station::text, '') || E'\\n' ||
                p_data, 'UTF8')), 'hex'));
    RETURN new_position;
END;
$$;
REVOKE ALL ON FUNCTION epm_clinic_insert(text, text, uuid) FROM PUBLIC;

CREATE FUNCTION epm_clinic_append(p_kind text, p_data text, p_station uuid) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    d jsonb := p_data::jsonb;
    technician boolean := pg_has_role(session_user, 'epm_technician', 'MEMBER');
    station boolean := pg_has_role(session_user, 'epm_station', 'MEMBER');
    found bigint;
    names text[];
    latest_resolution text;
BEGIN
    IF p_kind IN ('approval', 'revocation', 'client_resolved') THEN
        IF NOT technician THEN
            RAISE EXCEPTION 'only a technician (a member of epm_technician) may record a %',
                replace(p_kind, '_', ' ') USING ERRCODE = 'insufficient_privilege';
        END IF;
    ELSIF p_kind = 'client' THEN
        IF NOT (technician OR station) THEN
            RAISE EXCEPTION 'only a station (a member of epm_station) may claim a client code'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    ELSE
        RAISE EXCEPTION 'the clinic ledger has no event kind %', p_kind;
    END IF;
    IF jsonb_typeof(d) <> 'object' THEN
        RAISE EXCEPTION 'clinic event data must be a JSON object';
    END IF;
    PERFORM pg_advisory_xact_lock(1162890545, 0);
    IF p_kind = 'approval' THEN
        SELECT position INTO found FROM clinic_events WHERE kind IN ('approval', 'revocation')
            AND data::jsonb->>'sha256' = d->>'sha256' ORDER BY position LIMIT 1;
        IF found IS NOT NULL THEN
            IF (SELECT kind FROM clinic_events WHERE position = found) = 'revocation' THEN
                RAISE EXCEPTION 'the protocol file % was revoked (position %): a revoked file is '
                    'never approved again; approve a new version of it', d->>'sha256', found;
            END IF;
            IF EXISTS (SELECT 1 FROM clinic_events WHERE kind = 'revocation'
                       AND data::jsonb->>'sha256' = d->>'sha256') THEN
                RAISE EXCEPTION 'the protocol file % was revoked: a revoked file is never '
                    'approved again; approve a new version of it', d->>'sha256';
            END IF;
            RETURN found;
        END IF;
    ELSIF p_kind = 'revocation' THEN
        SELECT position INTO found FROM clinic_events WHERE kind = 'revocation'
            AND data::jsonb->>'sha256' = d->>'sha256' LIMIT 1;
        IF found IS NOT NULL THEN
            RETURN found;
        END IF;
    ELSIF p_kind = 'client' THEN
        SELECT position INTO found FROM clinic_events WHERE kind = 'client'
            AND data::jsonb->>'code' = d->>'code'
            AND station_id IS NOT DISTINCT FROM p_station
            AND epm_norm(data::jsonb->>'name') IS NOT DISTINCT FROM epm_norm(d->>'name')
            LIMIT 1;
        IF found IS NOT NULL THEN
            RETURN found;
        END IF;
    END IF;
    found := epm_clinic_insert(p_kind, p_data, p_station);
    IF p_kind = 'client' AND epm_norm(d->>'name') IS NOT NULL THEN
        SELECT array_agg(DISTINCT epm_norm(data::jsonb->>'name') ORDER BY
                         epm_norm(data::jsonb->>'name'))
            INTO names FROM clinic_events WHERE kind = 'client'
            AND data::jsonb->>'code' = d->>'code' AND epm_norm(data::jsonb->>'name') IS NOT NULL;
        SELECT epm_norm(data::jsonb->>'name') INTO latest_resolution FROM clinic_events
            WHERE kind = 'client_resolved' AND data::jsonb->>'code' = d->>'code'
            ORDER BY position DESC LIMIT 1;
        IF array_length(names, 1) > 1 AND latest_resolution IS DISTINCT FROM
                epm_norm(d->>'name') THEN
            PERFORM epm_clinic_insert('client_conflict', jsonb_build_object(
                'code', d->>'code',
                'names', (SELECT jsonb_agg(DISTINCT data::jsonb->>'name') FROM clinic_events
                          WHERE kind = 'client' AND data::jsonb->>'code' = d->>'code'),
                'stations', (SELECT jsonb_agg(DISTINCT station_id) FROM clinic_events
                             WHERE kind = 'client' AND data::jsonb->>'code' = d->>'code')
            )::text, NULL);
        END IF;
    END IF;
    RETURN found;
END;
$$;
REVOKE ALL ON FUNCTION epm_clinic_append(text, text, uuid) FROM PUBLIC;

CREATE VIEW approvals AS
    SELECT position, data::jsonb->>'sha256' AS sha256, data::jsonb->>'protocol_id' AS protocol_id,
           (data::jsonb->>'protocol_version')::integer AS protocol_version,
           data::jsonb->>'approved_by' AS approved_by, created_at AS approved_at, station_id
    FROM clinic_events WHERE kind = 'approval';
CREATE VIEW revocations AS
    SELECT position, data::jsonb->>'sha256' AS sha256, data::jsonb->>'revoked_by' AS revoked_by,
           created_at AS revoked_at, data::jsonb->>'reason' AS reason, station_id
    FROM clinic_events WHERE kind = 'revocation';
CREATE VIEW clients AS
    SELECT data::jsonb->>'code' AS code, min(position) AS first_position,
           count(DISTINCT epm_norm(data::jsonb->>'name')) > 1 AS names_differ
    FROM clinic_events WHERE kind = 'client' GROUP BY data::jsonb->>'code';

CREATE TABLE sessions (
    station_id        uuid NOT NULL REFERENCES stations(station_id),
    session_id        bigint NOT NULL,
    client_code       text NOT NULL,
    protocol_id       text NOT NULL,
    protocol_version  integer NOT NULL,
    started_at        text NOT NULL,
    simulated         boolean NOT NULL,
    outcome           text NOT NULL DEFAULT 'running',
    ended_at          text,
    txid              bigint NOT NULL,
    PRIMARY KEY (station_id, session_id)
);
CREATE INDEX sessions_by_txid ON sessions (txid);
CREATE INDEX sessions_by_client ON sessions (client_code);

CREATE FUNCTION epm_sessions_follow() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    d jsonb := NEW.data::jsonb;
BEGIN
    IF NEW.kind = 'session_started' THEN
        INSERT INTO sessions (station_id, session_id, client_code, protocol_id,
                              protocol_version, started_at, simulated, txid)
        VALUES (NEW.station_id, NEW.session_id, d->>'client_code', d->>'protocol_id',
                (d->>'protocol_version')::integer, coalesce(d->>'started_at', NEW.wall_time),
                coalesce((d->>'simulated')::boolean, false),
                pg_current_xact_id()::text::bigint)
        ON CONFLICT (station_id, session_id) DO NOTHING;
    ELSIF NEW.kind = 'session_end' THEN
        UPDATE sessions SET outcome = d->>'outcome', ended_at = NEW.wall_time,
                            txid = pg_current_xact_id()::text::bigint
            WHERE station_id = NEW.station_id AND session_id = NEW.session_id;
    END IF;
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_follow_sessions AFTER INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION epm_sessions_follow();
"""

#: Version 4: the documents a station handed out (session reports, aftercare handouts), as
#: bytes. A row is refused unless its bytes have its SHA-256 and the station's chain on the
#: server holds the ``report_written`` / ``handout_given`` event naming that SHA-256 for that
#: session: a document on the server is always one the records know. Append-only.
_V4 = """
CREATE TABLE documents (
    station_id   uuid NOT NULL REFERENCES stations(station_id),
    sha256       char(64) NOT NULL,
    session_id   bigint NOT NULL,
    kind         text NOT NULL,
    file_name    text NOT NULL,
    content      bytea NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (station_id, sha256),
    CHECK (encode(sha256(content), 'hex') = sha256)
);
CREATE TRIGGER documents_append_only BEFORE UPDATE OR DELETE ON documents
    FOR EACH ROW EXECUTE FUNCTION epm_events_append_only();

CREATE FUNCTION epm_documents_known() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM events WHERE station_id = NEW.station_id
                   AND session_id = NEW.session_id AND kind = NEW.kind
                   AND data::jsonb->>'sha256' = NEW.sha256) THEN
        RAISE EXCEPTION 'station % session %: no % event names the document % on the server: '
            'send the events first', NEW.station_id, NEW.session_id, NEW.kind, NEW.sha256;
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER documents_known BEFORE INSERT ON documents
    FOR EACH ROW EXECUTE FUNCTION epm_documents_known();
"""

#: Version 5: a station appends only its own chain. Each station row records the login role
#: that registered it (``login_role``, from ``session_user``; rows from before: NULL, taken
#: by the first role that appends to them); events, documents and client claims of a station
#: are refused from any other role, naming both. A superuser is not held to it (the server's
#: own administrator).
_V5 = """
ALTER TABLE stations ADD COLUMN login_role name DEFAULT session_user;
UPDATE stations SET login_role = NULL;

CREATE FUNCTION epm_own_station(p_station uuid) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    owner name;
BEGIN
    IF p_station IS NULL OR (SELECT rolsuper FROM pg_roles WHERE rolname = session_user) THEN
        RETURN;
    END IF;
    SELECT login_role INTO owner FROM stations WHERE station_id = p_station;
    IF owner IS NULL THEN
        UPDATE stations SET login_role = session_user WHERE station_id = p_station
            AND login_role IS NULL;
    ELSIF owner <> session_user THEN
        RAISE EXCEPTION 'station % belongs to the login role %, not %: each station appends '
            'only its own chain (give each treatment room its own login role)',
            p_station, owner, session_user USING ERRCODE = 'insufficient_privilege';
    END IF;
END;
$$;
REVOKE ALL ON FUNCTION epm_own_station(uuid) FROM PUBLIC;

CREATE FUNCTION epm_own_station_row() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
BEGIN
    PERFORM epm_own_station(NEW.station_id);
    RETURN NEW;
END;
$$;
CREATE TRIGGER events_own_station BEFORE INSERT ON events
    FOR EACH ROW EXECUTE FUNCTION epm_own_station_row();
CREATE TRIGGER documents_own_station BEFORE INSERT ON documents
    FOR EACH ROW EXECUTE FUNCTION epm_own_station_row();
CREATE TRIGGER clinic_events_own_station BEFORE INSERT ON clinic_events
    FOR EACH ROW WHEN (NEW.kind = 'client') EXECUTE FUNCTION epm_own_station_row();
"""

#: Version 6: ``sessions`` is changed only by the events that make it (an UPDATE outside the
#: events trigger, and any DELETE, is refused, as for the events themselves); a
#: ``session_started`` missing a field no longer stops a push (the field is stored empty);
#: an index for one session's events.
_V6 = """
CREATE FUNCTION epm_sessions_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' OR pg_trigger_depth() < 2 THEN
        RAISE EXCEPTION 'sessions follow the stations'' events: they are never changed or '
            'deleted by hand';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER sessions_guard BEFORE UPDATE OR DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION epm_sessions_guard();

CREATE OR REPLACE FUNCTION epm_sessions_follow() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    d jsonb := NEW.data::jsonb;
BEGIN
    IF NEW.kind = 'session_started' THEN
        INSERT INTO sessions (station_id, session_id, client_code, protocol_id,
                              protocol_version, started_at, simulated, txid)
        VALUES (NEW.station_id, NEW.session_id, coalesce(d->>'client_code', ''),
                coalesce(d->>'protocol_id', ''),
                CASE WHEN d->>'protocol_version' ~ '^[0-9]{1,9}$'
                     THEN (d->>'protocol_version')::integer ELSE 0 END,
                coalesce(d->>'started_at', NEW.wall_time),
                coalesce(d->>'simulated' = 'true', false),
                pg_current_xact_id()::text::bigint)
        ON CONFLICT (station_id, session_id) DO NOTHING;
    ELSIF NEW.kind = 'session_end' THEN
        UPDATE sessions SET outcome = coalesce(d->>'outcome', 'unknown'),
                            ended_at = NEW.wall_time,
                            txid = pg_current_xact_id()::text::bigint
            WHERE station_id = NEW.station_id AND session_id = NEW.session_id;
    END IF;
    RETURN NULL;
END;
$$;

CREATE INDEX events_by_session ON events (station_id, session_id);
"""

#: Version 7: ``received_at`` is when the row arrived (``clock_timestamp()``, not the start of
#: its transaction); the sessions trigger runs only for the two kinds it follows.
_V7 = """
ALTER TABLE events ALTER COLUMN received_at SET DEFAULT clock_timestamp();
ALTER TABLE documents ALTER COLUMN received_at SET DEFAULT clock_timestamp();
DROP TRIGGER events_follow_sessions ON events;
CREATE TRIGGER events_follow_sessions AFTER INSERT ON events
    FOR EACH ROW WHEN (NEW.kind IN ('session_started', 'session_end'))
    EXECUTE FUNCTION epm_sessions_follow();
"""

#: Version 8: a client code is flagged when the stations' *latest* claims carry different
#: names (a station that corrects its own client's name is not in conflict with itself), once
#: until it is resolved; when every station's latest claim carries one name again, the server
#: itself appends the resolution.
_V8 = """
CREATE OR REPLACE FUNCTION epm_clinic_append(p_kind text, p_data text, p_station uuid)
RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    d jsonb := p_data::jsonb;
    technician boolean := pg_has_role(session_user, 'epm_technician', 'MEMBER');
    station boolean := pg_has_role(session_user, 'epm_station', 'MEMBER');
    found bigint;
    names text[];
    raw_names jsonb;
    stations jsonb;
    latest_resolution text;
    resolved_at bigint;
    flagged_at bigint;
    flagged boolean;
BEGIN
    IF p_kind IN ('approval', 'revocation', 'client_resolved') THEN
        IF NOT technician THEN
            RAISE EXCEPTION 'only a technician (a member of epm_technician) may record a %',
                replace(p_kind, '_', ' ') USING ERRCODE = 'insufficient_privilege';
        END IF;
    ELSIF p_kind = 'client' THEN
        IF NOT (technician OR station) THEN
            RAISE EXCEPTION 'only a station (a member of epm_station) may claim a client code'
                USING ERRCODE = 'insufficient_privilege';
        END IF;
    ELSE
        RAISE EXCEPTION 'the clinic ledger has no event kind %', p_kind;
    END IF;
    IF jsonb_typeof(d) <> 'object' THEN
        RAISE EXCEPTION 'clinic event data must be a JSON object';
    END IF;
    PERFORM pg_advisory_xact_lock(1162890545, 0);
    IF p_kind = 'approval' THEN
        SELECT position INTO found FROM clinic_events WHERE kind IN ('approval', 'revocation')
            AND data::jsonb->>'sha256' = d->>'sha256' ORDER BY position LIMIT 1;
        IF found IS NOT NULL THEN
            IF (SELECT kind FROM clinic_events WHERE position = found) = 'revocation' THEN
                RAISE EXCEPTION 'the protocol file % was revoked (position %): a revoked file is '
                    'never approved again; approve a new version of it', d->>'sha256', found;
            END IF;
            IF EXISTS (SELECT 1 FROM clinic_events WHERE kind = 'revocation'
                       AND data::jsonb->>'sha256' = d->>'sha256') THEN
                RAISE EXCEPTION 'the protocol file % was revoked: a revoked file is never '
                    'approved again; approve a new version of it', d->>'sha256';
            END IF;
            RETURN found;
        END IF;
    ELSIF p_kind = 'revocation' THEN
        SELECT position INTO found FROM clinic_events WHERE kind = 'revocation'
            AND data::jsonb->>'sha256' = d->>'sha256' LIMIT 1;
        IF found IS NOT NULL THEN
            RETURN found;
        END IF;
    ELSIF p_kind = 'client' THEN
        SELECT position INTO found FROM clinic_events WHERE kind = 'client'
            AND data::jsonb->>'code' = d->>'code'
            AND station_id IS NOT DISTINCT FROM p_station
            AND epm_norm(data::jsonb->>'name') IS NOT DISTINCT FROM epm_norm(d->>'name')
            LIMIT 1;
        IF found IS NOT NULL THEN
            RETURN found;
        END IF;
    END IF;
    found := epm_clinic_insert(p_kind, p_data, p_station);
    IF p_kind = 'client' THEN
        -- Each station's latest claim of the code counts (a station may correct a name).
        SELECT array_agg(DISTINCT n ORDER BY n), jsonb_agg(DISTINCT raw),
               jsonb_agg(DISTINCT claimant)
            INTO names, raw_names, stations
            FROM (SELECT DISTINCT ON (station_id) station_id AS claimant,
                         epm_norm(data::jsonb->>'name') AS n, data::jsonb->>'name' AS raw
                  FROM clinic_events WHERE kind = 'client' AND data::jsonb->>'code' = d->>'code'
                  ORDER BY station_id, position DESC) latest
            WHERE n IS NOT NULL;
        SELECT position, epm_norm(data::jsonb->>'name') INTO resolved_at, latest_resolution
            FROM clinic_events WHERE kind = 'client_resolved'
            AND data::jsonb->>'code' = d->>'code' ORDER BY position DESC LIMIT 1;
        SELECT position INTO flagged_at FROM clinic_events WHERE kind = 'client_conflict'
            AND data::jsonb->>'code' = d->>'code' ORDER BY position DESC LIMIT 1;
        flagged := flagged_at IS NOT NULL AND flagged_at > coalesce(resolved_at, 0);
        IF coalesce(array_length(names, 1), 0) > 1 AND NOT flagged
                AND latest_resolution IS DISTINCT FROM epm_norm(d->>'name') THEN
            PERFORM epm_clinic_insert('client_conflict', jsonb_build_object(
                'code', d->>'code', 'names', raw_names, 'stations', stations)::text, NULL);
        ELSIF coalesce(array_length(names, 1), 0) <= 1 AND flagged THEN
            PERFORM epm_clinic_insert('client_resolved', jsonb_build_object(
                'code', d->>'code', 'name', d->>'name', 'by', 'the clinic server',
                'reason', 'every station''s latest claim of the code now carries this name'
            )::text, NULL);
        END IF;
    END IF;
    RETURN found;
END;
$$;
"""

SERVER_MIGRATIONS: tuple[ServerMigration, ...] = (
    ServerMigration(1, "stations, events, approvals, revocations, clients", _V1),
    ServerMigration(2, "the server refuses an event that does not continue its chain", _V2),
    ServerMigration(3, "the clinic ledger (approvals, revocations, clients); every session", _V3),
    ServerMigration(4, "the documents handed out (reports, handouts), checked", _V4),
    ServerMigration(5, "a station appends only its own chain", _V5),
    ServerMigration(6, "sessions change only with their events; an index per session", _V6),
    ServerMigration(7, "arrival times as they happen; the sessions trigger only when needed", _V7),
    ServerMigration(
        8, "client codes flagged on the stations' latest names, resolved when agreed", _V8
    ),
)
LATEST_SERVER_VERSION = SERVER_MIGRATIONS[-1].version

#: Role -> tables it may INSERT into (both may SELECT every table; nothing else).
ROLES: dict[str, tuple[str, ...]] = {
    "epm_station": ("stations", "events", "documents"),
    "epm_technician": ("stations", "events", "documents"),
}
#: What both roles may read.
TABLES = (
    "schema_version",
    "clinic",
    "stations",
    "events",
    "clinic_events",
    "sessions",
    "documents",
    "approvals",
    "revocations",
    "clients",
)
#: Both roles may append to the clinic ledger through this function (it checks who may append
#: what); nobody may call ``epm_clinic_insert`` but the functions themselves.
APPEND_FUNCTION = "epm_clinic_append(text, text, uuid)"

#: One lock id for every epm schema change on a server (pg_advisory_xact_lock).
_LOCK_ID = 0x45504D31  # "EPM1"

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_version (
    singleton  integer PRIMARY KEY CHECK (singleton = 1),
    version    integer NOT NULL
)
"""


@dataclass(frozen=True)
class InitReport:
    """What ``init_server`` did: the version now, the versions applied, the roles created."""

    version: int
    applied: tuple[int, ...]
    roles_created: tuple[str, ...]


def connect(url: str) -> Any:
    """A psycopg connection (autocommit: transactions are explicit) to ``url``, after the URL
    rules (:mod:`controller.server.url`); :class:`ServerError` when refused or unreachable."""
    problem = connection_problem(url)
    if problem:
        raise ServerError(problem)
    import psycopg

    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise ServerError(f"cannot connect to the clinic server: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def server_version(conn: Any) -> int:
    """The schema version on the server (0: no epm schema yet)."""
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL").fetchone()
    if not row[0]:
        return 0
    found = conn.execute("SELECT version FROM schema_version WHERE singleton = 1").fetchone()
    return int(found[0]) if found else 0


def _check_not_newer(version: int, latest: int) -> None:
    if version > latest:
        raise ServerSchemaTooNewError(
            f"the clinic server has schema version {version}, but this epm knows versions up "
            f"to {latest}: it was set up by a newer epm. Use that version (or newer); this epm "
            "will not touch it"
        )


def migrate_server(
    conn: Any, migrations: Sequence[ServerMigration] = SERVER_MIGRATIONS
) -> list[int]:
    """Apply the missing migrations in order, each in one transaction; the versions applied."""
    latest = migrations[-1].version if migrations else 0
    _check_not_newer(server_version(conn), latest)
    applied: list[int] = []
    for migration in migrations:
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
            conn.execute(_VERSION_TABLE)
            current = server_version(conn)
            _check_not_newer(current, latest)
            if current >= migration.version:
                continue
            if current != migration.version - 1:
                raise ServerError(
                    f"the clinic server is at schema version {current} but the next migration "
                    f"is {migration.version}: the migration list has a gap"
                )
            conn.execute(migration.script)
            conn.execute(
                "INSERT INTO schema_version (singleton, version) VALUES (1, %s) "
                "ON CONFLICT (singleton) DO UPDATE SET version = EXCLUDED.version",
                (migration.version,),
            )
        applied.append(migration.version)
    return applied


def ensure_roles(conn: Any) -> list[str]:
    """Create the group roles that do not exist yet and grant each exactly its rights (again:
    GRANT and REVOKE are idempotent); the roles created."""
    created: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_ID,))
        for role in ROLES:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (role,)).fetchone()
            if exists is None:
                conn.execute(f"CREATE ROLE {role} NOLOGIN")
                created.append(role)
        for role, writable in ROLES.items():
            conn.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
            conn.execute(f"REVOKE ALL ON {', '.join(TABLES)} FROM {role}")
            conn.execute(f"GRANT SELECT ON {', '.join(TABLES)} TO {role}")
            conn.execute(f"GRANT INSERT ON {', '.join(writable)} TO {role}")
            conn.execute(f"GRANT EXECUTE ON FUNCTION {APPEND_FUNCTION} TO {role}")
    return created


def init_server(url: str) -> InitReport:
    """``epm server init``: the schema up to date and the roles in place; running it again
    changes nothing. A server set up by a newer epm is refused before anything is written."""
    import psycopg

    conn = connect(url)
    try:
        _check_not_newer(server_version(conn), LATEST_SERVER_VERSION)
        applied = migrate_server(conn)
        created = ensure_roles(conn)
        return InitReport(server_version(conn), tuple(applied), tuple(created))
    except psycopg.errors.InsufficientPrivilege as exc:
        raise ServerError(
            f"the clinic server refused ({_first_line(exc)}): `epm server init` needs a role "
            "that may create tables in the database and create roles (CREATEROLE), such as "
            "the database owner"
        ) from exc
    except psycopg.Error as exc:
        raise ServerError(f"the clinic server failed: {_first_line(exc)}") from exc
    finally:
        conn.close()
