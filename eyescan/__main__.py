from eyescan.cli import main

main()
