"""`python -m qa_assistant.cli` is the `qa-assistant` command (as `python -m qa_assistant`)."""

import sys

from qa_assistant.cli import main

sys.exit(main())
