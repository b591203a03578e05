"""`python -m amqprpc.demo`: see `amqprpc.demo`."""

import sys

from . import main

sys.exit(main())
