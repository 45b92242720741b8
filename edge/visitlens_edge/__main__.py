from visitlens_edge.cli import main

raise SystemExit(main())
