"""Rules of seed 004's document jobs: submit (parameters checked against the job type's
model, inputs staged into one pinned directory, templates and previous results resolved),
batches, the job view in seed 004's words, templates, the result archive.

Decisions where the seed is silent:
- A job lands in the API key's workspace, or the user's personal workspace for a user
  token; it is then an ordinary job of that workspace (seed 001 and `/v1` show it).
- An input that cannot be found (the seed's own `/path/to/file.pdf`, a CID the node does
  not hold, a path outside the operator's input directory) does not refuse the submit: the
  job is created (200) and fails at once with `file not found: ...` (seed 004 accepts any
  filename; its worker finds out later).
- `use_cache`: a completed job of the same type in the same workspace with the same input
  CIDs and the same parameters (webhook and use_cache aside) is reused: the new job
  completes at once with its result, archive and `cached_from`.
- Batch status: `pending` while no job started, `completed` when all completed, `failed`
  when all ended and one failed, else `processing`.
- Seed 004's four words: pending (awaiting funding, pending, claimed), processing
  (running, submitted, disputed), completed, failed (failed, expired, cancelled).
"""

from __future__ import annotations

import hashlib
import json
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy.orm import Session

from marketplace.content.errors import ContentNotFound
from marketplace.content.store import ContentStore
from marketplace.datasets.zipstream import StreamingZip, store_members
from marketplace.errors import (
    ArchiveNotFound,
    BatchNotFound,
    InvalidField,
    JobNotFound,
    MarketplaceError,
    TemplateNotFound,
)
from marketplace.jobs import documents as doc
from marketplace.jobs.states import JobStatus
from marketplace.jobs.templates import check_template
from node.auth.principal import Principal
from node.authz.policy import Action, authorize, job_role
from node.config import NodeSettings
from node.db import utcnow
from node.documents import repository
from node.jobs import service as jobs
from node.models.documents import TransformerTemplate
from node.models.jobs import Job
from node.webhooks.service import check_target, create_job_webhook
from node.workspaces.service import personal_workspace_id

DIALECT = "seed004"
MAX_INPUT_BYTES = 512 * 1024 * 1024


def _iso(value: Any) -> str | None:
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def workspace_of(session: Session, principal: Principal) -> int:
    """The workspace a seed 004 call acts in: the API key's, else the user's personal one."""
    if principal.workspace_id is not None:
        return principal.workspace_id
    return personal_workspace_id(session, principal)


# --------------------------------------------------------------------------- inputs


@dataclass
class Staged:
    """The inputs of one job, copied into one directory to pin as the job's `folder_cid`."""

    inputs: list[dict[str, Any]] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)


def _input_name(index: int, ref: str) -> str:
    base = PurePosixPath(ref.rstrip("/")).name or "input"
    safe = "".join(c if c.isalnum() or c in "._-" else "_" for c in base)[:80]
    return f"{index:02d}-{safe}"


def _copy_ref(store: ContentStore, settings: NodeSettings, ref: str, dest: Path) -> str | None:
    """Copy the input `ref` to `dest`; return why it cannot be found, else None."""
    parsed = doc.ipfs_ref(ref)
    if parsed is not None:
        cid, path = parsed
        target = f"{cid}/{path}" if path else cid
        try:
            if not store.has(cid):
                return f"file not found: {ref} (the node does not hold {cid})"
            with dest.open("wb") as out:
                written = 0
                for chunk in store.cat(target):
                    written += len(chunk)
                    if written > MAX_INPUT_BYTES:
                        return f"input too large: {ref}"
                    out.write(chunk)
        except (ContentNotFound, MarketplaceError, ValueError) as exc:
            msg = getattr(exc, "message", str(exc))
            return f"file not found: {ref} ({msg})"
        return None
    root = settings.jobs_input_dir
    if root is None:
        return (
            f"file not found: {ref} (this node takes inputs as ipfs://<cid>/<path>; it has "
            "no input directory configured)"
        )
    if not Path(ref).is_absolute():
        return (
            f"file not found: {ref} (a local input is an absolute path under the input directory)"
        )
    try:
        local = Path(ref).resolve()
        base = root.resolve()
    except (OSError, RuntimeError):
        return f"file not found: {ref}"
    if not local.is_relative_to(base) or not local.is_file():
        return f"file not found: {ref} (not a file under the node's input directory)"
    if local.stat().st_size > MAX_INPUT_BYTES:
        return f"input too large: {ref}"
    shutil.copyfile(local, dest)
    return None


def stage_inputs(store: ContentStore, settings: NodeSettings, refs: list[str], tmp: Path) -> Staged:
    staged = Staged()
    for i, ref in enumerate(refs):
        name = _input_name(i, ref)
        problem = _copy_ref(store, settings, ref, tmp / name)
        if problem is not None:
            staged.missing.append(problem)
            continue
        digest = hashlib.sha256((tmp / name).read_bytes()).hexdigest()
        staged.inputs.append({"ref": ref, "name": name, "sha256": digest})
    return staged


def _refs(params: Any) -> list[str]:
    if isinstance(params, doc.SessionParams):
        return list(params.documents)
    filename = getattr(params, "filename", None)
    return [filename] if filename else []


# --------------------------------------------------------------------------- submit


@dataclass
class Prepared:
    """A validated submission, ready to become a job."""

    job_type: str
    params: Any
    raw: dict[str, Any]
    user_id: str | None
    extra: dict[str, Any] = field(default_factory=dict)


def prepare(
    session: Session,
    settings: NodeSettings,
    principal: Principal,
    workspace_id: int,
    job_type: str,
    raw: dict[str, Any],
    user_id: str | None,
    prefix: str = "",
) -> Prepared:
    """Check one submission (422 naming the bad field, prefixed by `prefix` in a batch) and
    resolve what the node knows: templates and previous jobs' results."""
    try:
        params = doc.parse_params(job_type, raw)
    except InvalidField as exc:
        field_name = prefix + exc.details["field"]
        raise InvalidField(prefix + exc.message, details={"field": field_name}) from None
    if params.webhook is not None:  # refused before any input is pinned
        check_target(params.webhook.url, settings.webhook_private_targets_allowed)
    extra: dict[str, Any] = {}
    name = getattr(params, "template", None)
    if name is not None:
        tpl = repository.template(session, workspace_id, name)
        if tpl is None:
            raise InvalidField(
                f"{prefix}parameters.template: no template named {name!r} in this workspace "
                "(create it with POST /api/jobs/templates)",
                details={"field": f"{prefix}parameters.template"},
            )
        extra["template_source"] = tpl.source
        extra["template_format"] = tpl.output_format
    if isinstance(params, doc.TransformerParams):
        if params.template_source is not None:
            check_template(params.template_source, f"{prefix}parameters.template_source")
            extra["template_source"] = params.template_source
        extra["template_format"] = params.output_format
        if params.source_job_id is not None:
            extra["input_data"] = _source_result(session, principal, params.source_job_id, prefix)
    return Prepared(job_type, params, raw, user_id, extra)


def _source_result(
    session: Session, principal: Principal, raw_id: str, prefix: str
) -> dict[str, Any]:
    field_name = f"{prefix}parameters.source_job_id"
    try:
        source = jobs.get_owned_job(session, principal, raw_id, with_events=False)
    except JobNotFound:
        raise InvalidField(
            f"{field_name}: no job {raw_id!r} that you may read", details={"field": field_name}
        ) from None
    if source.status != JobStatus.COMPLETED.value:
        raise InvalidField(
            f"{field_name}: job {raw_id} is {doc.seed004_word(source.status)}, not completed",
            details={"field": field_name},
        )
    return dict((source.result or {}).get("structured_data") or {})


def _public_params(raw: dict[str, Any]) -> dict[str, Any]:
    """The parameters as shown back: a webhook's token is never echoed."""
    out = dict(raw)
    if isinstance(out.get("webhook"), dict):
        out["webhook"] = {k: v for k, v in out["webhook"].items() if k != "token"}
    return out


def _cache_key(prep: Prepared, inputs: list[dict[str, Any]]) -> str:
    params = prep.params.model_dump(mode="json", exclude={"webhook", "use_cache"})
    basis = {
        "job_type": prep.job_type,
        "params": params,
        "inputs": [i["sha256"] for i in inputs],
        "extra": prep.extra,
    }
    return hashlib.sha256(json.dumps(basis, sort_keys=True).encode()).hexdigest()


def submit(
    session: Session,
    store: ContentStore,
    settings: NodeSettings,
    principal: Principal,
    workspace_id: int,
    prep: Prepared,
    batch: tuple[str, str] | None = None,
) -> Job:
    """Create the job of a prepared submission: stage and pin its inputs, attach its
    webhook, then either leave it pending for a provider, complete it from the cache, or
    fail it at once when an input cannot be found."""
    # The store records its pins through its own connection: end this session's write
    # (an API key's `last_used_at`, a first personal workspace) first, or SQLite's one
    # writer lock held here would stall the pin until the busy timeout.
    session.commit()
    with tempfile.TemporaryDirectory(prefix="dcm-inputs-") as tmp_name:
        tmp = Path(tmp_name) / "inputs"
        tmp.mkdir()
        staged = stage_inputs(store, settings, _refs(prep.params), tmp)
        folder_cid = None
        if staged.inputs:
            with store.hold():
                folder_cid = store.add_path(tmp, pin=True, cid_version=1, raw_leaves=True)
    spec: dict[str, Any] = {
        "dialect": DIALECT,
        "parameters": _public_params(prep.raw),
        "settings": prep.params.model_dump(mode="json", exclude={"webhook"}),
        "inputs": staged.inputs,
        **prep.extra,
    }
    if prep.user_id is not None:
        spec["user_id"] = prep.user_id
    if batch is not None:
        spec["batch_name"] = batch[1]
    if not staged.missing:
        spec["cache_key"] = _cache_key(prep, staged.inputs)
    job = jobs.create_job(
        session,
        job_type=prep.job_type,
        spec=spec,
        created_by=principal.user_id,
        workspace_id=workspace_id,
        requester_address=principal.address,
        folder_cid=folder_cid,
        batch_id=batch[0] if batch else None,
        max_retries=2,
    )
    hook = prep.params.webhook
    if hook is not None:
        create_job_webhook(
            session, settings, job, url=hook.url, token=hook.token, client_job_id=hook.job_id
        )
    if staged.missing:
        message = "; ".join(staged.missing)
        job.error = message
        jobs.transition(session, job, JobStatus.FAILED, event_type="failed", message=message)
        return job
    if prep.params.use_cache:
        _complete_from_cache(session, job)
    return job


def _complete_from_cache(session: Session, job: Job) -> None:
    key = job.spec.get("cache_key")
    for old in repository.completed_of_type(session, job.workspace_id or 0, job.job_type):
        if old.id != job.id and old.spec.get("cache_key") == key and old.result_cid:
            jobs.transition(
                session, job, JobStatus.RUNNING, event_type="started", message="Cached result"
            )
            job.result = {**(old.result or {}), "cached_from": f"job_{old.id}"}
            job.result_cid = old.result_cid
            job.result_type = old.result_type
            job.progress_percent = 100
            job.progress_message = f"Result reused from job_{old.id} (use_cache)"
            jobs.transition(
                session,
                job,
                JobStatus.COMPLETED,
                event_type="completed",
                message=f"Result reused from job_{old.id}",
                data={"result_cid": old.result_cid, "cached_from": f"job_{old.id}"},
            )
            return


def new_batch_id() -> str:
    return "batch_" + secrets.token_hex(8)


def submit_one(
    session: Session,
    store: ContentStore,
    settings: NodeSettings,
    principal: Principal,
    job_type: str,
    parameters: dict[str, Any],
    user_id: str | None,
) -> Job:
    """`POST /api/jobs/`: one job in the caller's workspace."""
    workspace_id = workspace_of(session, principal)
    authorize(session, principal, workspace_id, Action.CREATE_JOB)
    prep = prepare(session, settings, principal, workspace_id, job_type, parameters, user_id)
    return submit(session, store, settings, principal, workspace_id, prep)


def submit_batch(
    session: Session,
    store: ContentStore,
    settings: NodeSettings,
    principal: Principal,
    batch_name: str,
    items: list[tuple[str, dict[str, Any], str | None]],
) -> str:
    """`POST /api/jobs/batch`: every job checked first (a 422 names `jobs[i].<field>`),
    then all created under one new batch id, in one transaction."""
    workspace_id = workspace_of(session, principal)
    authorize(session, principal, workspace_id, Action.CREATE_JOB)
    preps = [
        prepare(session, settings, principal, workspace_id, t, p, u, prefix=f"jobs[{i}].")
        for i, (t, p, u) in enumerate(items)
    ]
    batch_id = new_batch_id()
    for prep in preps:
        submit(session, store, settings, principal, workspace_id, prep, (batch_id, batch_name))
    return batch_id


# --------------------------------------------------------------------------- reads


def get_job(session: Session, principal: Principal, raw_id: str) -> Job:
    return jobs.get_owned_job(session, principal, raw_id)


def _latest_step(job: Job) -> str | None:
    for ev in reversed(job.events):
        if ev.type == "progress":
            metrics = (ev.data or {}).get("metrics") or {}
            step = metrics.get("step") if isinstance(metrics, dict) else None
            if step:
                return str(step)
    return None


NOBODY = "No registered provider runs job type "


def status_message(session: Session, job: Job, on_offer: set[str] | None = None) -> str | None:
    """The job's progress message; for a pending job no provider can run, why it waits."""
    word = doc.seed004_word(job.status)
    if word == "pending":
        offered = repository.job_types_on_offer(session) if on_offer is None else on_offer
        if job.job_type not in offered:
            return (
                f"{NOBODY}{job.job_type!r}: the job waits until one that can registers "
                f"(on offer: {', '.join(sorted(offered)) or 'none'})"
            )
    if word == "failed":
        return job.error or job.progress_message or "Processing failed"
    if word == "completed":
        return (
            job.progress_message
            if job.result and job.result.get("cached_from")
            else ("Processing completed")
        )
    return job.progress_message or ("Waiting for a provider" if word == "pending" else None)


def job_summary(job: Job) -> dict[str, Any]:
    """The job as POST answers it (the seed's `data.job`)."""
    out: dict[str, Any] = {
        "job_id": f"job_{job.id}",
        "job_type": job.job_type,
        "status": doc.seed004_word(job.status),
        "created_at": _iso(job.created_at),
        "parameters": (job.spec or {}).get("parameters", {}),
    }
    if job.batch_id:
        out["batch_id"] = job.batch_id
    if (job.spec or {}).get("user_id") is not None:
        out["user_id"] = job.spec["user_id"]
    if job.error:
        out["error"] = {"code": "JOB_FAILED", "message": job.error}
    return out


def _results(job: Job) -> dict[str, Any] | None:
    if not job.result_cid:
        return None
    result = job.result or {}
    return {
        "structured_data": result.get("structured_data", {}),
        "assets": [f"/ipfs/{job.result_cid}/{a}" for a in result.get("assets", [])],
        "target_dir": f"/ipfs/{job.result_cid}",
        "archive_url": f"/api/jobs/job_{job.id}/download-archive",
        **({"cached_from": result["cached_from"]} if "cached_from" in result else {}),
    }


def job_view(session: Session, job: Job) -> dict[str, Any]:
    """`GET /api/jobs/{job_id}`: status, progress, results and logs in seed 004's words."""
    word = doc.seed004_word(job.status)
    percent = 100 if word == "completed" else (job.progress_percent or 0)
    step = {"pending": "pending", "completed": "completed", "failed": "failed"}.get(word)
    logs = [
        {
            "timestamp": _iso(ev.created_at),
            "level": ev.level,
            "message": ev.message or ev.type,
        }
        for ev in job.events
        if ev.type == "log" or ev.from_status is not None or ev.to_status is not None
    ]
    return {
        **job_summary(job),
        "updated_at": _iso(job.updated_at),
        "progress": {
            "step": step or _latest_step(job) or "processing",
            "percent": percent,
            "message": status_message(session, job),
        },
        "results": _results(job),
        "logs": logs,
    }


def batch_status(words: list[str]) -> str:
    if words and all(w == "completed" for w in words):
        return "completed"
    if words and all(w in ("completed", "failed") for w in words):
        return "failed"
    if all(w == "pending" for w in words):
        return "pending"
    return "processing"


def batch_view(
    session: Session, principal: Principal, batch_id: str, *, full: bool = False
) -> dict[str, Any]:
    """`GET /api/jobs/batch/{batch_id}`: the batch's counts and each job's status; 404 for
    a batch with no job the caller may read."""
    rows = [
        j
        for j in repository.batch_jobs(session, batch_id)
        if job_role(session, principal, j) is not None
    ]
    if not rows:
        raise BatchNotFound(f"No batch {batch_id!r}")
    words = [doc.seed004_word(j.status) for j in rows]
    return {
        "batch_id": batch_id,
        "batch_name": (rows[0].spec or {}).get("batch_name"),
        "status": batch_status(words),
        "job_count": len(rows),
        "completed_count": words.count("completed"),
        "failed_count": words.count("failed"),
        "pending_count": words.count("pending"),
        "processing_count": words.count("processing"),
        "jobs": [
            job_summary(j) if full else {"job_id": f"job_{j.id}", "status": w}
            for j, w in zip(rows, words, strict=True)
        ],
    }


def archive(store: ContentStore, job: Job) -> StreamingZip:
    """The job's result directory as a deterministic zip (the dataset zip's writer)."""
    if not job.result_cid:
        raise ArchiveNotFound(
            f"Job job_{job.id} has no archive yet (it is {doc.seed004_word(job.status)})"
        )
    try:
        return StreamingZip(store_members(store, job.result_cid))
    except ContentNotFound as exc:
        raise ArchiveNotFound(f"The archive of job job_{job.id} is not in the store") from exc


# --------------------------------------------------------------------------- templates


def save_template(
    session: Session,
    principal: Principal,
    name: str,
    source: str,
    output_format: str,
) -> TransformerTemplate:
    """Create or replace the workspace's template `name` (members and owners)."""
    workspace_id = workspace_of(session, principal)
    authorize(session, principal, workspace_id, Action.CREATE_JOB)
    check_template(source, "source")
    tpl = repository.template(session, workspace_id, name)
    now = utcnow()
    if tpl is None:
        tpl = TransformerTemplate(
            workspace_id=workspace_id,
            name=name,
            created_by=principal.user_id,
            created_at=now,
            source=source,
            output_format=output_format,
        )
        session.add(tpl)
    tpl.source, tpl.output_format, tpl.updated_at = source, output_format, now
    session.flush()
    return tpl


def list_templates(session: Session, principal: Principal) -> list[TransformerTemplate]:
    workspace_id = workspace_of(session, principal)
    authorize(session, principal, workspace_id, Action.READ_JOB)
    return list(repository.templates(session, workspace_id))


def get_template(session: Session, principal: Principal, name: str) -> TransformerTemplate:
    workspace_id = workspace_of(session, principal)
    authorize(session, principal, workspace_id, Action.READ_JOB)
    tpl = repository.template(session, workspace_id, name)
    if tpl is None:
        raise TemplateNotFound(f"No template named {name!r}")
    return tpl


def template_view(tpl: TransformerTemplate) -> dict[str, Any]:
    return {
        "name": tpl.name,
        "source": tpl.source,
        "output_format": tpl.output_format,
        "created_at": _iso(tpl.created_at),
        "updated_at": _iso(tpl.updated_at),
    }
