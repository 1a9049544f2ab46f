"""Admin users in the console (owners only): the list and its download, new users with a role,
disabling and enabling, resetting two-factor sign-in. The operator's own page lives in `profile`.

Each action calls the identity service the admin API calls: it checks the username, the password's
strength and the role, refuses to disable oneself, and audits without a password or secret.
"""

from typing import Annotated

from fastapi import Form, Request
from fastapi.responses import RedirectResponse, Response

from kaquan import identity
from kaquan.identity.permissions import ROLES, Permission
from kaquan.identity.schemas import UserCreate
from kaquan.kit.bounds import Id
from kaquan.kit.tables import Format, Table
from kaquan.web.console import profile
from kaquan.web.console.rendering import console_router, form_model, page
from kaquan.web.deps import Principal, RuntimeDep, require
from kaquan.web.downloads import DOWNLOAD_RESPONSES, table_download
from kaquan.web.i18n import language, translator
from kaquan.web.pages import local_time

router = console_router()
UsersManage = Annotated[Principal, require(Permission.USERS_MANAGE)]
USERS = "/admin/users"


def _back(done: str) -> RedirectResponse:
    return RedirectResponse(f"{USERS}?done={done}", status_code=303)


@router.get(USERS)
async def users_page(request: Request, rt: RuntimeDep, admin: UsersManage, done: str = "") -> Response:
    async with rt.db.read() as session:
        users = await identity.list_users(session)
    context = {"users": users, "roles": list(ROLES), "when": local_time(request), "done": done}
    return page(request, admin, "users.html", context)


@router.get("/admin/users.{fmt}", response_class=Response, responses=DOWNLOAD_RESPONSES)
async def users_download(request: Request, rt: RuntimeDep, admin: UsersManage, fmt: Format) -> Response:
    t = translator(language(request))
    zone = rt.settings.zone()
    async with rt.db.read() as session:
        users = await identity.list_users(session)
    header = [
        t("user.username"),
        t("user.role"),
        t("field.status"),
        t("user.totp"),
        t("user.failed_logins"),
        t("people.created_in", zone=zone.key),
        t("user.last_login_in", zone=zone.key),
    ]
    rows = [
        [
            user.username,
            t(f"role.{user.role}"),
            t("user.state.disabled" if user.disabled else "user.state.active"),
            t("people.yes" if user.totp_enabled else "people.no"),
            user.failed_logins,
            user.created_at.astimezone(zone),
            user.last_login_at.astimezone(zone) if user.last_login_at else None,
        ]
        for user in users
    ]
    return table_download(Table(t("users.title"), header, rows), fmt, "users")


@router.post(USERS)
async def create_user(
    rt: RuntimeDep,
    admin: UsersManage,
    username: Annotated[str, Form(max_length=100)] = "",
    password: Annotated[str, Form(max_length=300)] = "",
    role: Annotated[str, Form(max_length=32)] = "",
) -> Response:
    """A new user with a role; they sign in with this password and should change it at once."""
    body = form_model(UserCreate, username=username, password=password, role=role)
    async with rt.db.transaction() as session:
        await identity.create_user(session, body.username, body.password, body.role, actor=admin.actor, ip=admin.ip)
    return _back("created")


@router.post("/admin/users/{user_id}/disable")
async def disable_user(rt: RuntimeDep, admin: UsersManage, user_id: Id) -> Response:
    """Disable: every session and API token of the user ends for good (re-enabling brings none back)."""
    async with rt.db.transaction() as session:
        await identity.set_disabled(session, admin.user, user_id, True, ip=admin.ip)
    return _back("disabled")


@router.post("/admin/users/{user_id}/enable")
async def enable_user(rt: RuntimeDep, admin: UsersManage, user_id: Id) -> Response:
    async with rt.db.transaction() as session:
        await identity.set_disabled(session, admin.user, user_id, False, ip=admin.ip)
    return _back("enabled")


@router.post("/admin/users/{user_id}/totp/reset")
async def reset_totp(rt: RuntimeDep, admin: UsersManage, user_id: Id) -> Response:
    """For a user who lost their authenticator: they sign in with the password alone and enrol again."""
    async with rt.db.transaction() as session:
        await identity.reset_totp(session, admin.user, user_id, ip=admin.ip)
    return _back("totp_reset")


router.routes.extend(profile.router.routes)
