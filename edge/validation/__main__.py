"""python -m edge.validation: runs the REST body validator until SIGTERM."""

from edge.validation.app import ValidationSettings, build
from services.common.runner import serve

if __name__ == "__main__":
    serve("validation", ValidationSettings(), build)
