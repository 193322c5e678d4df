"""python -m services.profile: runs the profile service until SIGTERM."""

from services.common.runner import serve
from services.profile.app import ProfileSettings, build

if __name__ == "__main__":
    serve("profile", ProfileSettings(), build)
