from dstlib.cli import main

raise SystemExit(main())
