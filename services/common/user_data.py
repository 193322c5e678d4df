"""The UserDataService servicer every service with user data registers: export and erasure
of what that service holds about a user, each in one transaction as that user (RLS), for
identity only.
A service gives its name and two store functions; identity's privacy endpoints fan out to it.
An export may hold messages, rows' values and snake_case keys: it leaves here in the proto3 JSON
mapping (services/common/json_mapping.py), as every other REST body."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

from google.protobuf import json_format, struct_pb2

from openhr.common.v1 import user_data_pb2, user_data_pb2_grpc
from services.common import errors
from services.common.db import Database, Tx
from services.common.json_mapping import to_json

Export = Callable[[Tx, str], Awaitable[dict]]
Delete = Callable[[Tx, str], Awaitable[dict[str, int]]]


class UserDataApi(user_data_pb2_grpc.UserDataServiceServicer):
    def __init__(self, service: str, db: Database, export: Export, delete: Delete) -> None:
        self._service, self._db, self._export, self._delete = service, db, export, delete

    @staticmethod
    def _own(user_id: str) -> str:
        """The user the request names: identity (the only caller surface.INTERNAL_CALLERS
        admits, by its service token) asks on behalf of that user's own ExportMyData / DeleteMe."""
        try:
            return str(uuid.UUID(user_id))
        except ValueError:
            raise errors.invalid_field("user_id", "must be a UUID") from None

    async def ExportUserData(self, request, context):
        user_id = self._own(request.user_id)
        async with self._db.transaction(user_id) as tx:
            data = await self._export(tx, user_id)
        struct = struct_pb2.Struct()
        json_format.ParseDict(to_json(data), struct)
        return user_data_pb2.ExportUserDataResponse(service=self._service, data=struct)

    async def DeleteUserData(self, request, context):
        user_id = self._own(request.user_id)
        async with self._db.transaction(user_id) as tx:
            deleted = await self._delete(tx, user_id)
        return user_data_pb2.DeleteUserDataResponse(service=self._service, deleted=deleted)
