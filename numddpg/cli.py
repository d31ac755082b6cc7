"""The ``numddpg`` command: parses arguments and calls the library, nothing more."""
import argparse
import sys


def build_parser():
    parser = argparse.ArgumentParser(prog="numddpg", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    from . import gradcheck
    gradcheck.add_arguments(sub.add_parser("gradcheck", help=gradcheck.HELP,
                                           description=gradcheck.HELP))
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
