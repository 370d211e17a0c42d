import sys

from sana_wm.cli import main

sys.exit(main())
