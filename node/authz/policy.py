"""Who may do what: the one authorization rule behind every dialect and every write.

Routers name an `Action` and call `authorize` (a workspace-level action), `authorize_job`
(an action on one job), `authorize_content_write`, or, for provider daemons,
`authorize_provider_job`; list queries take their scope from `readable_jobs` (or
`readable_scope`). Nothing else decides access, so a new dialect only has to name its
actions.

Roles and what they may do (`PERMISSIONS`):

| action                                         | owner | member | viewer | provider |
|------------------------------------------------|-------|--------|--------|----------|
| read workspace, its members; read jobs         | yes   | yes    | yes    | -        |
| create, update, cancel, retry jobs             | yes   | yes    | -      | -        |
| manage members and API keys                    | yes   | -      | -      | -        |
| claim jobs; write progress, logs, results      | -     | -      | -      | yes      |
| write content (Kubo `/api/v0` add, pin...)     | yes   | yes    | -      | yes      |

Owner, member and viewer are membership roles; `provider` exists only on API keys.

The caller's role in a workspace (`effective_role`):
- a user token (password or wallet sign-in): the membership role;
- an API key: only in its own workspace, while it is not revoked and its creator is an
  active member. An owner/member/viewer key acts with the lower of its role and the
  creator's current role; a provider key acts as provider while its creator may still
  write jobs there (owner or member), since a provider's results are writes.

Jobs. A job in a workspace is governed by the roles above. A job without a workspace (a
seed 000 upload) belongs to its requester, the user who created it or the wallet it was
requested from, who acts as its owner; API keys never reach such a job.

Providers. Claims and provider writes come from a provider's wallet sign-in (the lease
holder), never from an API key bearer. Escrowed jobs (reward > 0) are the open market:
every registered provider may claim them. A job without escrow is private: offered only
to providers admitted to its workspace's pool, i.e. that presented a live `provider` key
of that workspace at registration (`node.providers`).

Content writes need a user token (any signed-in user, as a Kubo node's operator would),
or an API key whose role may write content. Reads stay public.

Refusals: a workspace that does not exist is 404; a caller without the action is 403.
For one job, a caller who may not read it gets 404 (ids of others' jobs leak nothing) and
one who may read it but not act gets 403.
"""

from __future__ import annotations

import enum
import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BindParameter, ColumnElement, and_, bindparam, false, or_
from sqlalchemy.orm import Session

from marketplace.errors import Forbidden, JobNotFound, NotAdmitted, WorkspaceNotFound
from marketplace.jobs.states import ACTIVE
from node.auth.principal import Principal
from node.authz import repository
from node.models.auth import ApiKey, User
from node.models.jobs import Job
from node.models.workspaces import MEMBERSHIP_ROLES, Role, WorkspaceMember

_MAX_ID = 2**31 - 1  # ids are 32-bit on PostgreSQL; larger ones cannot exist


class Action(enum.StrEnum):
    READ_WORKSPACE = "read_workspace"
    MANAGE_MEMBERS = "manage_members"
    MANAGE_KEYS = "manage_keys"
    READ_JOB = "read_job"
    CREATE_JOB = "create_job"
    UPDATE_JOB = "update_job"
    CANCEL_JOB = "cancel_job"
    RETRY_JOB = "retry_job"
    CLAIM_JOB = "claim_job"
    WRITE_RESULT = "write_result"
    WRITE_CONTENT = "write_content"


A = Action
_READER = frozenset({A.READ_WORKSPACE, A.READ_JOB})
_WRITER = _READER | {A.CREATE_JOB, A.UPDATE_JOB, A.CANCEL_JOB, A.RETRY_JOB, A.WRITE_CONTENT}

PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.OWNER: _WRITER | {A.MANAGE_MEMBERS, A.MANAGE_KEYS},
    Role.MEMBER: _WRITER,
    Role.VIEWER: _READER,
    Role.PROVIDER: frozenset({A.CLAIM_JOB, A.WRITE_RESULT, A.WRITE_CONTENT}),
}

_LEASED = frozenset(s.value for s in ACTIVE)

# Membership roles in increasing order of power (the "lower of two roles" of a key).
_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.OWNER: 2}


def allows(role: Role, action: Action) -> bool:
    return action in PERMISSIONS[role]


def roles_allowing(action: Action) -> frozenset[Role]:
    return frozenset(role for role, actions in PERMISSIONS.items() if action in actions)


# A provider key admits while its creator may still write jobs in the workspace.
PROVIDER_KEY_CREATOR_ROLES = roles_allowing(A.CREATE_JOB) & MEMBERSHIP_ROLES


# --------------------------------------------------------------------------- workspaces


def effective_role(session: Session, principal: Principal, workspace_id: int) -> Role | None:
    """The caller's role in the workspace, or None if it has none there.

    Raises WorkspaceNotFound (404) for a workspace that does not exist."""
    if not 0 < workspace_id <= _MAX_ID:
        raise WorkspaceNotFound()
    exists, member_role = repository.workspace_role(session, workspace_id, principal.user_id)
    if not exists:
        raise WorkspaceNotFound()
    if principal.workspace_id is not None and principal.workspace_id != workspace_id:
        return None
    if member_role is None:
        return None
    role = Role(member_role)
    if principal.api_key_id is None:
        return role
    key = session.get(ApiKey, principal.api_key_id)
    if key is None or key.revoked_at is not None or key.workspace_id != workspace_id:
        return None
    key_role = Role(key.role)
    if key_role is Role.PROVIDER:
        return Role.PROVIDER if role in PROVIDER_KEY_CREATOR_ROLES else None
    return key_role if _RANK[key_role] <= _RANK[role] else role


def authorize(session: Session, principal: Principal, workspace_id: int, action: Action) -> Role:
    """The caller's role in the workspace if it allows `action`; 404 for a workspace that
    does not exist, 403 otherwise."""
    role = effective_role(session, principal, workspace_id)
    if role is None:
        raise Forbidden("No access to this workspace")
    if not allows(role, action):
        raise Forbidden(f"Role {role.value} cannot {action.value.replace('_', ' ')}")
    return role


def require_user_credential(principal: Principal, what: str) -> None:
    """Some acts need a person's own sign-in: a leaked key must not mint keys or outlive
    its revocation through what it created."""
    if principal.api_key_id is not None:
        raise Forbidden(f"API keys cannot {what}; sign in as a user")


# --------------------------------------------------------------------------- jobs


def is_open_market(job: Job) -> bool:
    """Python twin of `repository.open_market`: the job's reward is escrowed."""
    return job.reward_wei > 0


def _is_requester(principal: Principal, job: Job) -> bool:
    if principal.workspace_id is not None or principal.api_key_id is not None:
        return False  # scoped to one workspace: nothing outside it
    return job.created_by == principal.user_id or (
        principal.address is not None and job.requester_address == principal.address
    )


def job_role(session: Session, principal: Principal, job: Job) -> Role | None:
    """The caller's role over one job: its workspace role, or owner for the requester of
    a job without a workspace."""
    if job.workspace_id is None:
        return Role.OWNER if _is_requester(principal, job) else None
    return effective_role(session, principal, job.workspace_id)


def authorize_job(session: Session, principal: Principal, job: Job, action: Action) -> Role:
    """Allow `action` on `job` or raise: 404 if the caller may not read the job, 403 if it
    may read it but not do this."""
    role = job_role(session, principal, job)
    if role is None or not allows(role, A.READ_JOB):
        raise JobNotFound()
    if not allows(role, action):
        raise Forbidden(f"Role {role.value} cannot {action.value.replace('_', ' ')}")
    return role


# Past this many workspaces, a list reads them as one `IN` branch instead of one each.
MAX_WORKSPACE_BRANCHES = 16


@dataclass(frozen=True)
class ReadScope:
    """SQL scope of every job a caller may read: the branches whose OR it is, and the
    values of their parameters. Each branch is one seek on one index, so a list can take
    the first rows of each in order and merge them (`node.jobs.repository.keyset_jobs`)
    instead of sorting every readable row; a branch may overlap another (a job of the
    caller's wallet it also created).

    The branches are built once per shape (how many workspaces, whether a wallet) with
    their values as bound parameters, so a statement made of them can be built once too:
    building the scope and the list statement around it on every request was a third of
    a list's worker-thread time (issue 12's profile)."""

    branches: tuple[ColumnElement[bool], ...]
    params: dict[str, Any]

    def clause(self) -> ColumnElement[bool]:
        """The scope as one condition with its values in it, for a statement built per
        request."""
        return or_(*self.branches).params(self.params)


@functools.cache
def _scope_branches(
    workspaces: int, as_list: bool, own: bool, wallet: bool
) -> tuple[ColumnElement[bool], ...]:
    """The branches of one scope shape, values as parameters `scope_*` (`ReadScope`)."""
    out: list[ColumnElement[bool]] = (
        [Job.workspace_id.in_(bindparam("scope_workspaces", expanding=True))]
        if as_list
        else [Job.workspace_id == bindparam(f"scope_workspace_{i}") for i in range(workspaces)]
    )
    if own:
        out.append(and_(Job.workspace_id.is_(None), Job.created_by == bindparam("scope_user")))
    if wallet:
        out.append(
            and_(Job.workspace_id.is_(None), Job.requester_address == bindparam("scope_wallet"))
        )
    return tuple(out) or (false(),)


def readable_scope(session: Session, principal: Principal) -> ReadScope:
    """The jobs the caller may read: those of every workspace where its role reads jobs
    (an API key: its own workspace only), and, for jobs without a workspace, those it
    created and those requested from its wallet."""
    readers = roles_allowing(A.READ_JOB)
    if principal.workspace_id is not None:
        role = effective_role(session, principal, principal.workspace_id)
        if role is None or role not in readers:
            return ReadScope(_scope_branches(0, False, False, False), {})
        return ReadScope(
            _scope_branches(1, False, False, False), {"scope_workspace_0": principal.workspace_id}
        )
    ids = repository.member_workspace_ids(session, principal.user_id, readers)
    as_list = len(ids) > MAX_WORKSPACE_BRANCHES
    params: dict[str, Any] = (
        {"scope_workspaces": ids}
        if as_list
        else {f"scope_workspace_{i}": id_ for i, id_ in enumerate(ids)}
    )
    params["scope_user"] = principal.user_id
    if principal.address:
        params["scope_wallet"] = principal.address
    branches = _scope_branches(len(ids), as_list, True, bool(principal.address))
    return ReadScope(branches, params)


def readable_in_workspace(
    session: Session, principal: Principal, workspace_id: int
) -> ColumnElement[bool]:
    """SQL scope of the jobs the caller may read in one workspace, once it may read jobs
    there (404 or 403 as `authorize` answers): every job of the workspace, whoever made
    it. One condition on the workspace's index, so a page's count reads the index alone
    (the whole readable scope, ANDed with the workspace, made it read each row: issue
    12's profile of the seed 001 list, 5.1 against 2.7 ms for 100,000 jobs on SQLite)."""
    authorize(session, principal, workspace_id, A.READ_JOB)
    return Job.workspace_id == workspace_id


def readable_jobs(session: Session, principal: Principal) -> ColumnElement[bool]:
    """SQL scope of every job the caller may read (the page-numbered lists)."""
    return readable_scope(session, principal).clause()


# --------------------------------------------------------------------------- providers


def claimable_by(provider_id: int | BindParameter[int]) -> ColumnElement[bool]:
    """SQL scope of the jobs a provider may be offered: the open market, and the private
    jobs of the pools it is admitted to (`provider_id`: a value, or a bound parameter
    for a statement built once)."""
    return or_(
        repository.open_market(),
        Job.workspace_id.in_(
            repository.admitted_workspace_ids(provider_id, PROVIDER_KEY_CREATOR_ROLES)
        ),
    )


def is_admitted(session: Session, provider_id: int, job: Job) -> bool:
    """Whether a provider may work on `job` (claim it, write to it, fetch its inputs)."""
    if is_open_market(job):
        return True
    if job.workspace_id is None:
        return False
    return repository.is_admitted(
        session, provider_id, job.workspace_id, PROVIDER_KEY_CREATOR_ROLES
    )


def authorize_provider_job(session: Session, provider_id: int, job: Job) -> None:
    """403 NOT_ADMITTED unless the provider may work on the job."""
    if not is_admitted(session, provider_id, job):
        raise NotAdmitted("This provider is not admitted to the pool of this job's workspace")


def may_read_inputs(session: Session, principal: Principal | None, job: Job) -> bool:
    """Whether the caller may fetch the job's inputs (its dataset): anyone for the open
    market; for a private job, whoever may read it, and the admitted provider that holds
    its lease now."""
    if is_open_market(job):
        return True
    if principal is None:
        return False
    role = job_role(session, principal, job)
    if role is not None and allows(role, A.READ_JOB):
        return True
    if principal.api_key_id is not None or not principal.address:
        return False
    if job.lease_holder != principal.address or job.status not in _LEASED:
        return False
    provider_id = repository.provider_id_of(session, principal.address)
    return provider_id is not None and is_admitted(session, provider_id, job)


def admission_role(session: Session, key: ApiKey) -> Role | None:
    """What a key presented by a provider daemon admits it as: `provider` for a live
    provider key whose creator may still write jobs in its workspace, else None."""
    if key.revoked_at is not None or key.role != Role.PROVIDER.value:
        return None
    creator = session.get(User, key.user_id)
    member = session.get(WorkspaceMember, (key.workspace_id, key.user_id))
    if creator is None or not creator.is_active or member is None:
        return None
    return Role.PROVIDER if Role(member.role) in PROVIDER_KEY_CREATOR_ROLES else None


# --------------------------------------------------------------------------- content


def authorize_content_write(session: Session, principal: Principal) -> None:
    """Content writes: any user token; an API key whose role allows them."""
    if principal.api_key_id is None:
        return
    assert principal.workspace_id is not None
    role = effective_role(session, principal, principal.workspace_id)
    if role is None or not allows(role, A.WRITE_CONTENT):
        shown = "no role" if role is None else f"role {role.value}"
        raise Forbidden(f"This API key ({shown}) may not write content")
