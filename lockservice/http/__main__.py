"""`python -m lockservice.http`: the standalone HTTP gateway (see `gateway.py`)."""

import sys

from lockservice.http.gateway import main_gateway

sys.exit(main_gateway(sys.argv[1:]))
