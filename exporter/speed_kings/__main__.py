from speed_kings.cli import main

main()
