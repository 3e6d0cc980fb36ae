"""Studies in the store: the ``studies`` table, the runs of a study, creating and resuming them.

A study's runs are ordinary runs with a ``study_id`` and a ``study_key`` (canonical JSON of
their cell values, seed and task order): re-submitting the same spec keeps the finished
runs, puts failed and cancelled ones back in the queue (they resume from their last stage
checkpoint) and adds the missing ones. Everything a submission writes goes in one
transaction, after every check has passed.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from medtui.errors import ConfigError, StoreError
from medtui.store.store import Store
from medtui.study.expand import Plan
from medtui.study.ingest import register
from medtui.study.spec import StudySpec, from_json

#: Run columns the study views need (no config, no bulky JSON beyond metrics and progress).
RUN_COLUMNS = "id, name, status, paradigm, tasks, heldout, rows, seed, study_key, metrics, progress, created_at, started_at, finished_at, error"


@dataclass
class Submission:
    """What a submission did: the study id and run ids by what happened to them."""

    study_id: int
    created: bool
    added: list[int] = field(default_factory=list)
    resumed: list[int] = field(default_factory=list)
    kept: list[int] = field(default_factory=list)
    active: list[int] = field(default_factory=list)

    @property
    def run_ids(self) -> list[int]:
        """Every run of the plan."""
        return sorted(self.added + self.resumed + self.kept + self.active)

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready summary."""
        return {"study_id": self.study_id, "created": self.created, "added": self.added, "resumed": self.resumed,
                "kept": self.kept, "active": self.active}


def get_study(store: Store, ref: str | int) -> dict[str, Any]:
    """A study row (spec decoded) by id or name; StoreError when there is none."""
    if isinstance(ref, int) or str(ref).isdigit():
        rows = list(store.db.query("select * from studies where id = ?", [int(ref)]))
    else:
        rows = list(store.db.query("select * from studies where name = ?", [ref]))
    if not rows:
        raise StoreError(f"no study {ref!r} in {store.path} (`medtui studies` lists them)")
    row = rows[0]
    row["spec"] = json.loads(row["spec"])
    return row


def find_study(store: Store, name: str) -> dict[str, Any] | None:
    """The study named ``name``, or None."""
    try:
        return get_study(store, name) if not name.isdigit() else None
    except StoreError:
        return None


def study_spec(store: Store, study: dict[str, Any]) -> StudySpec:
    """The stored spec of a study row."""
    return from_json(study["spec"])


def study_runs(store: Store, study_id: int) -> list[dict[str, Any]]:
    """The runs of a study, oldest first, with JSON columns decoded (no configs)."""
    out = []
    for r in store.db.query(f"select {RUN_COLUMNS} from runs where study_id = ? order by id", [study_id]):
        for k in ("tasks", "heldout", "rows", "metrics", "progress"):
            if isinstance(r.get(k), str):
                r[k] = json.loads(r[k])
        r["key"] = json.loads(r["study_key"]) if r["study_key"] else None
        out.append(r)
    return out


def list_studies(store: Store) -> list[dict[str, Any]]:
    """Every study with its run counts by status, newest first."""
    counts: dict[int, dict[str, int]] = {}
    for sid, status, n in store.db.execute("select study_id, status, count(*) from runs where study_id is not null group by study_id, status"):
        counts.setdefault(sid, {})[status] = n
    out = []
    for row in store.db.query("select id, name, spec, created_at, updated_at from studies order by id desc"):
        spec = json.loads(row["spec"])
        c = counts.get(row["id"], {})
        out.append({"id": row["id"], "name": row["name"], "created_at": row["created_at"], "updated_at": row["updated_at"],
                    "axes": list((spec.get("grid") or {}).keys()), "runs": sum(c.values()), "status": c})
    return out


def same_spec(stored: dict[str, Any], spec: StudySpec) -> bool:
    """Whether a stored spec is ``spec``; read back through the current config, so keys added to
    the run config since it was stored (with their defaults) do not make it differ."""
    try:
        return from_json(stored).canonical() == spec.canonical()
    except Exception:  # a stored spec this version cannot read is a different one
        return False


def spec_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """A short description of how two stored specs differ (``grid, seeds``)."""
    keys = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)]
    if "base" in keys:
        base = [k for k in sorted(set(old["base"]) | set(new["base"])) if old["base"].get(k) != new["base"].get(k)]
        keys = [k if k != "base" else "config " + ", ".join(base[:4]) for k in keys]
    return ", ".join(keys)


def submit(store: Store, plan: Plan, force: bool = False, remote: Callable[[int], Path] | None = None) -> Submission:
    """Record the study of ``plan`` and its runs (queued), resuming a previous submission of it.

    A study name already used with a different spec is refused (ConfigError) unless ``force``,
    which replaces the stored spec and adds the runs the new plan has; runs of the old plan are
    kept. Nothing is written when the call raises. ``remote`` (run id -> job store file) marks
    the added and resumed runs as executed elsewhere, in the same transaction, so the local
    queue never starts them.
    """
    spec_json = plan.spec.to_json()
    existing = find_study(store, plan.spec.name)
    if existing is not None and not same_spec(existing["spec"], plan.spec) and not force:
        diff = spec_difference(json.loads(json.dumps(from_json(existing["spec"]).to_json())), json.loads(json.dumps(spec_json)))
        raise ConfigError(f"study {plan.spec.name!r} already exists with a different spec ({diff}); --force extends it with this one")
    now = time.time()
    conn = store.db.conn
    conn.execute("BEGIN IMMEDIATE")
    try:
        if existing is None:
            cur = conn.execute("insert into studies (name, spec, created_at, updated_at) values (?, ?, ?, ?)",
                               [plan.spec.name, json.dumps(spec_json), now, now])
            sub = Submission(study_id=int(cur.lastrowid), created=True)
        else:
            conn.execute("update studies set spec = ?, updated_at = ? where id = ?", [json.dumps(spec_json), now, existing["id"]])
            sub = Submission(study_id=int(existing["id"]), created=False)
        have = {r[0]: (r[1], r[2]) for r in conn.execute("select study_key, id, status from runs where study_id = ?", [sub.study_id])}
        for planned in plan.runs:
            key = planned.key
            if key in have:
                run_id, status = have[key]
                if status == "finished":
                    sub.kept.append(run_id)
                elif status in ("failed", "cancelled"):
                    conn.execute("update runs set status = 'queued', error = null, cancel_requested = 0, updated_at = ? where id = ?", [now, run_id])
                    store.log(run_id, f"queued again by study {plan.spec.name!r}: resumes from its last stage")
                    sub.resumed.append(run_id)
                    if remote is not None:
                        register(store, run_id, remote(run_id))
                else:
                    sub.active.append(run_id)
                continue
            run_id = store.create_run(planned.config, status="queued", study_id=sub.study_id, study_key=key)
            sub.added.append(run_id)
            if remote is not None:
                register(store, run_id, remote(run_id))
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return sub


def delete_study(store: Store, study_id: int) -> int:
    """Remove a study record; runs still attached are kept as ordinary runs. Returns how many were detached."""
    with store.write():
        n = store.db.execute("update runs set study_id = null, study_key = null where study_id = ?", [study_id]).rowcount
        store.db.execute("delete from studies where id = ?", [study_id])
    return int(n or 0)
