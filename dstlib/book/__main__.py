from dstlib.book.cli import main

raise SystemExit(main())
