"""Console sockets follow their session: a socket ends when its session does.

Each console socket joins two groups besides its pages' (see consumers.py):
`session.<session key>` and `user.<user id>`. Here, from whichever process makes the change:

- signing out (`user_logged_out`) sends `session.end` to the session's group: its sockets
  close at once (the session is flushed right after the signal, so they are told, not asked);
- a user saved without staff or active status, or deleted, gets `session.end` on all its
  sockets; any other save of a user, and a change of its groups, sends `session.check`:
  each socket reads its session and user again and takes the new role (an operator demoted
  to viewer stops seeing the action buttons), or closes.

The consumer also checks its session before every push, so a session that expires, or
is ended in a way no signal reports (a password change elsewhere), never gets another
fragment.
"""

from __future__ import annotations

import logging
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

log = logging.getLogger(__name__)

END, CHECK = "session.end", "session.check"


def session_group(key: str) -> str:
    return f"session.{key}"


def user_group(pk: Any) -> str:
    return f"user.{pk}"


def tell(group: str, kind: str) -> None:
    """Send `kind` to a group now, from sync code; a failure is logged (the sockets still
    check their session before their next push)."""
    layer = get_channel_layer()
    if layer is None:
        return
    try:
        async_to_sync(layer.group_send)(group, {"type": kind})
    except Exception:
        log.exception("could not tell %s: %s", group, kind)


def tell_on_commit(group: str, kind: str) -> None:
    """After the transaction commits, so a socket that reads the user again sees the change."""
    transaction.on_commit(lambda: tell(group, kind))


def _logged_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    key = getattr(getattr(request, "session", None), "session_key", None)
    if key:
        tell(session_group(key), END)


def _user_saved(sender: Any, instance: Any, created: bool = False, **kwargs: Any) -> None:
    if created:
        return
    allowed = instance.is_active and instance.is_staff
    tell_on_commit(user_group(instance.pk), CHECK if allowed else END)


def _user_deleted(sender: Any, instance: Any, **kwargs: Any) -> None:
    tell_on_commit(user_group(instance.pk), END)


def _groups_changed(
    sender: Any, instance: Any, action: str, reverse: bool, pk_set: set[Any] | None, **kwargs: Any
) -> None:
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if not reverse:
        tell_on_commit(user_group(instance.pk), CHECK)
    else:  # group.user_set changed: every user named (all of them on a clear we cannot list)
        for pk in pk_set or ():
            tell_on_commit(user_group(pk), CHECK)


def connect() -> None:
    """Connect the receivers (HealthConfig.ready)."""
    user_model = get_user_model()
    user_logged_out.connect(_logged_out, dispatch_uid="health.sessions.logged_out")
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="health.sessions.user_saved")
    post_delete.connect(_user_deleted, sender=user_model, dispatch_uid="health.sessions.user_deleted")
    m2m_changed.connect(
        _groups_changed, sender=user_model.groups.through, dispatch_uid="health.sessions.groups_changed"
    )
