"""The two roles. Operators may halt, resume, send signals and edit risk limits; Viewers may look
at everything and change nothing. Kept in step after every migrate (``receivers.py``)."""

from __future__ import annotations

OPERATOR, VIEWER = "Operator", "Viewer"

VIEW = [
    "view_account", "view_equitysnapshot", "view_fill", "view_learningrecord",
    "view_modelversion", "view_notificationchannel", "view_notificationdelivery", "view_order",
    "view_performancesnapshot", "view_position",
    "view_risklimits", "view_risklimitschange", "view_signal", "view_symbol",
    "view_tradingstatechange", "view_tradingstaterecord",
]  # fmt: skip
OPERATE = ["operate_trading", "add_risklimits", "change_risklimits"]


def ensure_roles() -> None:
    from django.contrib.auth.models import Group, Permission

    trading = Permission.objects.filter(content_type__app_label="trading")
    viewer, _ = Group.objects.get_or_create(name=VIEWER)
    viewer.permissions.set(trading.filter(codename__in=VIEW))
    operator, _ = Group.objects.get_or_create(name=OPERATOR)
    operator.permissions.set(trading.filter(codename__in=VIEW + OPERATE))
