"""python -m services.profile: runs the profile service until SIGTERM."""

import asyncio

from services.common.runner import run
from services.profile.app import ProfileSettings, build

if __name__ == "__main__":
    asyncio.run(run("profile", ProfileSettings(), build))
