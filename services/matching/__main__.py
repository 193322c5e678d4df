"""python -m services.matching: runs the matching service until SIGTERM."""

from services.common.runner import serve
from services.matching.app import MatchingSettings, build

if __name__ == "__main__":
    serve("matching", MatchingSettings(), build)
