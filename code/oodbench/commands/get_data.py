"""Install data/ and models/ from the mirror or URLs (layer 6: the get_data.py command).

Set up data/ and models/: every catalogue item from the mirror or its URL, verified, then the
rebuilt Tiny-ImageNet sets. What cannot be had here is listed, one line each, with its source.

    python code/get_data.py                 # everything that can be had (bash scripts/get_data.sh)
    python code/get_data.py cifar10 iSUN    # just these items; exit status 1 if one is missing

The mirror is $ODIN_MIRROR (default ../shared); ODIN_OFFLINE=1 tries no download.
"""
import argparse
import sys

from oodbench.assets import fetch, rebuild
from oodbench.assets.catalog import ITEMS, ITEMS_BY_NAME, REBUILT, Unavailable
from oodbench.commands.cli import description
from oodbench.core.paths import UserError, mirror_dir


def build_parser():
    parser = argparse.ArgumentParser(description=description(__doc__),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="*", metavar="ITEM",
                        help="items to set up (default: all); one of " + ", ".join(ITEMS_BY_NAME))
    parser.add_argument("--no-rebuild", action="store_true",
                        help=f"do not build the derived sets ({', '.join(REBUILT)})")
    return parser


def set_up(items, rebuilt):
    """Install ``items`` and build ``rebuilt``; the messages of what is unavailable.
    A corrupt file (UserError that is not Unavailable) stops everything."""
    missing = []
    for item in items:
        try:
            fetch.ensure(item)
        except Unavailable as e:
            missing.append(str(e))
    for name in rebuilt:
        try:
            rebuild.build(name)
        except Unavailable as e:
            missing.append(f"{name} is not built: {e}")
    return missing


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    unknown = [n for n in args.items if n not in ITEMS_BY_NAME]
    if unknown:
        parser.error(f"unknown item(s) {', '.join(unknown)}; "
                     f"choose from {', '.join(ITEMS_BY_NAME)}")
    print(f"Setting up data/ and models/ (mirror: {mirror_dir() or 'none'})")
    items = [ITEMS_BY_NAME[n] for n in args.items] or ITEMS
    rebuilt = [] if args.no_rebuild or args.items else list(REBUILT)
    try:
        missing = set_up(items, rebuilt)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    for line in missing:
        print(f"  unavailable: {line}")
    # Explicitly requested items must all succeed; the default run reports what is missing.
    return 1 if (missing and args.items) else 0
