"""Profiles read from the profile service as the caller (the kit's channel forwards their token), so the
enrichment service sees exactly what the caller may see."""

from __future__ import annotations

import grpc

from openhr.profile.v1 import profile_pb2, profile_pb2_grpc
from services.common import errors


class ProfileReader:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._stub = profile_pb2_grpc.ProfileServiceStub(channel)

    async def mine(self) -> profile_pb2.Profile:
        try:
            response = await self._stub.GetMyProfile(profile_pb2.GetMyProfileRequest())
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise errors.failed_precondition("create your profile first (POST /v1/profiles)") from None
            raise _translate(exc) from None
        return response.profile

    async def my_github_login(self) -> str:
        """The GitHub username on the caller's profile; "" when they have none (or no profile)."""
        try:
            response = await self._stub.GetMyProfile(profile_pb2.GetMyProfileRequest())
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                return ""
            raise _translate(exc) from None
        return response.profile.links.github_username

    async def visible(self, profile_id: str) -> profile_pb2.Profile:
        """A profile the caller may see; NOT_FOUND for one that does not exist or is hidden from them."""
        try:
            response = await self._stub.GetProfile(profile_pb2.GetProfileRequest(profile_id=profile_id))
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.NOT_FOUND:
                raise errors.not_found("profile") from None
            if exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                raise errors.invalid_field("profile_id", "must be a profile id (a UUID)") from None
            raise _translate(exc) from None
        return response.profile


def _translate(exc: grpc.aio.AioRpcError) -> errors.DomainError:
    if exc.code() == grpc.StatusCode.UNAUTHENTICATED:
        return errors.unauthenticated(exc.details() or "sign in again")
    return errors.unavailable("profiles are unavailable, retry later")
