"""SQL text of the job lifecycle, written once and built for each dialect.

Every statement that changes a job's state names the state it starts from in its
``WHERE`` clause; :data:`GUARDED_TRANSITIONS` lists those (from, to) pairs, checked
against :data:`conveyor.job.TRANSITIONS` once, at import. Tables are unqualified (the
PostgreSQL store's connections run with ``search_path`` set to its schema).
"""

from __future__ import annotations

from typing import Final

from conveyor.job import JobState, check_transition
from conveyor.stores.controls import MOVABLE_VALUES
from conveyor.stores.sql.dialect import Dialect
from conveyor.stores.sql_columns import JOB_COLUMNS

S = JobState

FENCE: Final = "id = ? AND lease_token = ? AND state = 'processing'"
DROP_LEASE: Final = "lease_token = NULL, lease_expires_at = NULL"
_FINISHED: Final = "state IN ('completed', 'failed', 'cancelled')"
_KNOWN_STATES: Final = ", ".join(f"'{state.value}'" for state in JobState)
COLUMN_LIST: Final = ", ".join(JOB_COLUMNS)
"""Column names, for INSERT."""

GUARDED_TRANSITIONS: Final = (
    (S.PENDING, S.PROCESSING),  # claim_queue, claim_one
    (S.PROCESSING, S.COMPLETED),  # complete, the dialect's complete_batch
    (S.PROCESSING, S.RETRYING),  # fail, rescue
    (S.PROCESSING, S.FAILED),  # fail, rescue, quarantine
    (S.PROCESSING, S.PENDING),  # release
    (S.PROCESSING, S.SCHEDULED),  # release
    (S.PROCESSING, S.CANCELLED),  # finish_cancelled
    (S.SCHEDULED, S.PENDING),  # the dialect's stage
    (S.RETRYING, S.PENDING),  # the dialect's stage
)
for _source, _target in GUARDED_TRANSITIONS:
    check_transition("<sql store>", _source, _target)


class Statements:
    """The statements of one dialect, built once (see :meth:`Dialect.bind`)."""

    def __init__(self, d: Dialect) -> None:
        self.dialect = d
        b = d.bind
        cols = d.select_list
        self.claim_set = (
            "UPDATE jobs SET state = 'processing', attempt = jobs.attempt + 1, "
            f"lease_token = {d.token}, lease_expires_at = ?, worker_id = ?, started_at = ?, "
            "finished_at = NULL, heartbeat_at = ?, cancel_requested = false\n"
        )
        """Parameters (expires, worker, now, now); the claim statements add theirs."""
        self.claim_queue = b(d.claim_queue(self.claim_set))
        self.claim_one = b(f"{self.claim_set} WHERE id = ? AND state = 'pending' RETURNING {cols}")
        self.quarantine = b(
            "UPDATE jobs SET state = 'failed', failure_reason = 'corrupt', finished_at = ?, "
            f"{DROP_LEASE}, cancel_requested = false, errors = {d.json_param} "
            "WHERE id = ? AND state = 'processing' RETURNING has_dependents"
        )
        """A claimed row that cannot be decoded goes to the DLQ in the claim's transaction."""
        self.repair_state = b(
            "UPDATE jobs SET state = 'failed', failure_reason = 'corrupt' "
            f"WHERE id = ? AND state NOT IN ({_KNOWN_STATES})"
        )
        """A row whose state no code knows becomes ``failed`` (before a retry)."""
        self.complete = b(
            f"UPDATE jobs SET state = 'completed', result = ?, {DROP_LEASE}, finished_at = ?, "
            f"cancel_requested = false WHERE {FENCE} RETURNING has_dependents"
        )
        self.fail = b(
            f"UPDATE jobs SET state = ?, {d.append_error}, run_at = coalesce(?, run_at), "
            f"{DROP_LEASE}, finished_at = ?, failure_reason = ?, cancel_requested = false "
            f"WHERE {FENCE} RETURNING has_dependents"
        )
        self.release = b(
            "UPDATE jobs SET state = ?, attempt = CASE WHEN attempt > 0 THEN attempt - 1 "
            f"ELSE 0 END, run_at = coalesce(?, run_at), {DROP_LEASE}, worker_id = NULL, "
            f"started_at = NULL, heartbeat_at = NULL WHERE {FENCE} RETURNING 1"
        )
        cancel_set = (
            f"UPDATE jobs SET state = 'cancelled', {DROP_LEASE}, finished_at = ?, "
            "failure_reason = 'cancelled', cancel_requested = false"
        )
        self.finish_cancelled = b(f"{cancel_set} WHERE {FENCE} RETURNING has_dependents")
        self._maintenance(d)
        self._management(d)
        self._dependencies(d)
        self._enqueue(d)
        self._records(d)

    def _maintenance(self, d: Dialect) -> None:
        b = d.bind
        self.stage = b(d.stage())
        self.next_due = b(
            f"SELECT min(run_at) FROM jobs{d.index('jobs_due')} "
            "WHERE state IN ('scheduled', 'retrying')"
        )
        self.expired = b(d.expired())
        self.rescue = b(
            f"UPDATE jobs SET state = ?, rescue_count = ?, {d.append_error}, "
            f"run_at = coalesce(?, run_at), {DROP_LEASE}, finished_at = ?, failure_reason = ?, "
            "cancel_requested = false WHERE id = ? AND state = 'processing' "
            "RETURNING has_dependents"
        )
        # A chain step reads its parent's result when it runs: the parent stays until then.
        no_live_step = (
            f"AND NOT EXISTS (SELECT 1 FROM jobs AS step{d.index('jobs_live_steps')} "
            "WHERE step.parent_id = jobs.id "
            "AND step.state NOT IN ('completed', 'failed', 'cancelled'))"
        )
        finished = (
            f"FROM jobs{d.index('jobs_finished')} WHERE {_FINISHED} AND state = ? "
            f"AND finished_at <= ? {no_live_step}"
        )
        self.prune_candidates = b(
            f"SELECT id, unique_key, idempotency_key {finished} "
            f"ORDER BY finished_at LIMIT ? {d.skip_locked}"
        )
        """Locked where the database locks rows, so a job retried or deleted meanwhile is
        not deleted by id afterwards; a row another transaction holds is skipped."""
        self.prune_count = b(f"SELECT count(*) {finished}")
        self.drop_job_records = b(f"DELETE FROM records WHERE namespace = ? AND {d.id_list('key')}")
        self.delete_jobs = b(f"DELETE FROM jobs WHERE {d.id_list('id')}")
        self.delete_edges_of_many = b(
            f"DELETE FROM job_dependencies WHERE {d.id_list('job_id')} OR {d.id_list('depends_on')}"
        )
        self.orphan_unique = b(
            "DELETE FROM unique_keys WHERE (expires_at IS NOT NULL AND expires_at <= ?) "
            "OR NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = unique_keys.job_id)"
        )
        self.orphan_idempotency = b(
            "DELETE FROM idempotency_keys WHERE expires_at <= ? "
            "OR NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = idempotency_keys.job_id)"
        )
        self.orphan_edges = (
            "DELETE FROM job_dependencies "
            "WHERE NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = job_dependencies.job_id) "
            "OR NOT EXISTS (SELECT 1 FROM jobs WHERE jobs.id = job_dependencies.depends_on)"
        )

    def _management(self, d: Dialect) -> None:
        b = d.bind
        cols = d.select_list
        self.get = b(f"SELECT {cols} FROM jobs WHERE id = ?")
        self.get_many = b(f"SELECT {cols} FROM jobs WHERE {d.id_list('id')}")
        self.state_of = b(f"SELECT state, has_dependents FROM jobs WHERE id = ? {d.row_lock}")
        self.request_cancel = b(
            "UPDATE jobs SET cancel_requested = true WHERE id = ? AND state = 'processing'"
        )
        self.cancel = b(
            f"UPDATE jobs SET state = 'cancelled', {DROP_LEASE}, finished_at = ?, "
            "failure_reason = 'cancelled', cancel_requested = false WHERE id = ?"
        )
        self.retry = b(
            "UPDATE jobs SET state = 'pending', attempt = 0, rescue_count = 0, run_at = ?, "
            f"failure_reason = NULL, finished_at = NULL, {DROP_LEASE}, cancel_requested = false "
            "WHERE id = ? AND state IN ('failed', 'cancelled')"
        )
        self.delete_job = b("DELETE FROM jobs WHERE id = ? AND state <> 'processing'")
        self.delete_edges_of = b("DELETE FROM job_dependencies WHERE job_id = ? OR depends_on = ?")
        self.counts = "SELECT queue, state, count(*) FROM jobs GROUP BY queue, state"
        self.oldest_pending = (
            f"SELECT queue, min(run_at) FROM jobs{d.index('jobs_claim')} "
            "WHERE state = 'pending' GROUP BY queue"
        )
        movable = "state IN (" + ", ".join(f"'{value}'" for value in MOVABLE_VALUES) + ")"
        self.set_priority = b(
            f"UPDATE jobs SET priority = ? WHERE {d.id_list('id')} AND {movable} "
            "RETURNING id, state"
        )
        self.set_queue = b(
            f"UPDATE jobs SET queue = ? WHERE {d.id_list('id')} AND {movable} RETURNING id, state"
        )
        self.find_ids = b("SELECT id FROM jobs WHERE id BETWEEN ? AND ? ORDER BY id LIMIT ?")

    def _dependencies(self, d: Dialect) -> None:
        b = d.bind
        self.dependents = b(
            "SELECT j.id, j.state, j.blocked_by, j.run_at, j.on_dependency_failure "
            "FROM job_dependencies AS d JOIN jobs AS j ON j.id = d.job_id "
            f"WHERE d.depends_on = ? {d.dependents_lock}"
        )
        self.forget = b("DELETE FROM job_dependencies WHERE depends_on = ?")
        self.count_down = b("UPDATE jobs SET blocked_by = ? WHERE id = ?")
        self.unblock = b(
            "UPDATE jobs SET state = ?, blocked_by = 0 WHERE id = ? AND state = 'blocked'"
        )
        self.apply_policy = b(
            "UPDATE jobs SET state = ?, failure_reason = ?, finished_at = ? "
            "WHERE id = ? AND state = 'blocked'"
        )

    def _enqueue(self, d: Dialect) -> None:
        b = d.bind
        self.insert_job = b(
            f"INSERT INTO jobs ({COLUMN_LIST}) VALUES ({', '.join('?' * len(JOB_COLUMNS))})"
        )
        self.put_payload = b("INSERT INTO job_payloads (job_id, payload) VALUES (?, ?)")
        self.existing_id = b(f"SELECT id FROM jobs WHERE {d.id_list('id')} LIMIT 1")
        self.states_of = b(f"SELECT id, state FROM jobs WHERE {d.id_list('id')} {d.share_lock}")
        self.unique_holds = b(
            "SELECT u.key, u.job_id, u.expires_at, j.state "
            "FROM unique_keys AS u LEFT JOIN jobs AS j ON j.id = u.job_id "
            f"WHERE {d.id_list('u.key')}"
        )
        self.idempotency_holds = b(
            "SELECT k.key, k.job_id, k.expires_at, j.state, k.fingerprint "
            "FROM idempotency_keys AS k LEFT JOIN jobs AS j ON j.id = k.job_id "
            f"WHERE {d.id_list('k.key')}"
        )
        self.put_unique = b(
            "INSERT INTO unique_keys (key, job_id, expires_at) VALUES (?, ?, ?) "
            "ON CONFLICT (key) DO UPDATE SET "
            "job_id = excluded.job_id, expires_at = excluded.expires_at"
        )
        self.put_idempotency = b(
            "INSERT INTO idempotency_keys (key, job_id, fingerprint, expires_at) "
            "VALUES (?, ?, ?, ?) ON CONFLICT (key) DO UPDATE SET job_id = excluded.job_id, "
            "fingerprint = excluded.fingerprint, expires_at = excluded.expires_at"
        )
        self.put_dependency = b(
            "INSERT INTO job_dependencies (job_id, depends_on) VALUES (?, ?) ON CONFLICT DO NOTHING"
        )
        self.mark_depended_on = b(
            f"UPDATE jobs SET has_dependents = true WHERE {d.id_list('id')} AND NOT has_dependents"
        )

    def _records(self, d: Dialect) -> None:
        b = d.bind
        live = "(expires_at IS NULL OR expires_at > ?)"
        prefix, order = d.record_prefix()
        self.get_record = b(
            "SELECT value, version, expires_at FROM records "
            f"WHERE namespace = ? AND key = ? AND {live}"
        )
        # A create is an upsert that replaces only an expired row; a replace names the
        # version it expects. One statement each, so compare-and-set needs no lock.
        self.create_record = b(
            "INSERT INTO records AS r (namespace, key, value, version, expires_at) "
            "VALUES (?, ?, ?, 1, ?) ON CONFLICT (namespace, key) DO UPDATE SET "
            "value = excluded.value, version = r.version + 1, expires_at = excluded.expires_at "
            "WHERE r.expires_at IS NOT NULL AND r.expires_at <= ? RETURNING version"
        )
        self.replace_record = b(
            "UPDATE records SET value = ?, version = version + 1, expires_at = ? "
            f"WHERE namespace = ? AND key = ? AND version = ? AND {live} RETURNING version"
        )
        self.delete_record = b("DELETE FROM records WHERE namespace = ? AND key = ?")
        self.delete_record_at = b(
            "DELETE FROM records WHERE namespace = ? AND key = ? AND version = ?"
        )
        self.list_records = b(
            "SELECT key, value, version, expires_at FROM records "
            f"WHERE namespace = ? AND {prefix} AND {live} ORDER BY {order}"
        )
        self.drop_expired_records = b("DELETE FROM records WHERE expires_at <= ?")
