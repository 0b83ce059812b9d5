from s2r.cli import main

raise SystemExit(main())
