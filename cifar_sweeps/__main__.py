from cifar_sweeps.cli import main

raise SystemExit(main())
