import sys

from reactor.main import main

sys.exit(main())
