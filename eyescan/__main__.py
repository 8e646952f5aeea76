from eyescan.cli.app import main

main()
