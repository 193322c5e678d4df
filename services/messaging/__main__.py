"""python -m services.messaging: runs the messaging service until SIGTERM."""

from services.common.runner import serve
from services.messaging.app import MessagingSettings, build

if __name__ == "__main__":
    serve("messaging", MessagingSettings(), build)
