"""python -m edge.validation: runs the REST body validator until SIGTERM."""

import asyncio

from edge.validation.app import ValidationSettings, build
from services.common.runner import run

if __name__ == "__main__":
    asyncio.run(run("validation", ValidationSettings(), build))
