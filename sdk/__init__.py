"""The OpenHR Python SDK: typed, generated clients (betterproto2 dataclasses, package
`openhr_client`, built by `make protos`) and an authenticated channel to use them with.

    from openhr_client.openhr.profile.v1 import GetMyProfileRequest, ProfileServiceStub
    from sdk import authenticated_channel

    with authenticated_channel("127.0.0.1:8080", token) as channel:
        me = ProfileServiceStub(channel).get_my_profile(GetMyProfileRequest()).profile
"""

from sdk.channel import authenticated_channel

__all__ = ["authenticated_channel"]
