from stadsnav.cli import main

main()
