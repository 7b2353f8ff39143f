from tunrouter.cli.main import main

raise SystemExit(main())
