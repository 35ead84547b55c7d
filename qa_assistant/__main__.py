"""`python -m qa_assistant` is the `qa-assistant` command."""

import sys

from qa_assistant.cli import main

sys.exit(main())
