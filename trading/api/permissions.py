from __future__ import annotations

from rest_framework.permissions import SAFE_METHODS, BasePermission


class OperatorsWrite(BasePermission):
    """Anyone logged in may read; only operators (``trading.operate_trading``) may act."""

    message = "only operators may do this"

    def has_permission(self, request, view) -> bool:
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return request.method in SAFE_METHODS or user.has_perm("trading.operate_trading")
