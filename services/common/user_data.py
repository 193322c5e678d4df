"""UserDataService (openhr.common.v1): export and erasure of what one service holds about a
user, called by identity on behalf of that user. A service subclasses `UserDataServicer`
with its store's `export` and `delete`; the checks and the proto translation are here."""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod

from google.protobuf import json_format, struct_pb2

from openhr.common.v1 import user_data_pb2, user_data_pb2_grpc
from services.common import errors
from services.common.auth import current_principal
from services.common.db import Database, Tx


class UserDataServicer(user_data_pb2_grpc.UserDataServiceServicer, ABC):
    service = ""

    def __init__(self, db: Database) -> None:
        self._db = db

    @abstractmethod
    async def export(self, tx: Tx, user_id: str) -> dict:
        """Section name -> JSON-ready records."""

    @abstractmethod
    async def delete(self, tx: Tx, user_id: str) -> dict[str, int]:
        """Table -> rows erased."""

    @staticmethod
    def _own(user_id: str) -> str:
        try:
            user_id = str(uuid.UUID(user_id))
        except ValueError:
            raise errors.invalid_field("user_id", "must be a UUID") from None
        if user_id != current_principal().user_id:
            raise errors.permission_denied("only the user themselves can export or delete their data")
        return user_id

    async def ExportUserData(self, request, context):
        user_id = self._own(request.user_id)
        async with self._db.transaction(user_id) as tx:
            data = await self.export(tx, user_id)
        struct = struct_pb2.Struct()
        json_format.ParseDict(data, struct)
        return user_data_pb2.ExportUserDataResponse(service=self.service, data=struct)

    async def DeleteUserData(self, request, context):
        user_id = self._own(request.user_id)
        async with self._db.transaction(user_id) as tx:
            deleted = await self.delete(tx, user_id)
        return user_data_pb2.DeleteUserDataResponse(service=self.service, deleted=deleted)
