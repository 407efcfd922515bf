from trailkeeper.cli.main import main

main()
