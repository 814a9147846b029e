from edgenas.cli.main import main

main()
