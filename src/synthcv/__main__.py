from synthcv.cli import main

main()
