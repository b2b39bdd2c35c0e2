"""Convert a checkpoint you trust (e.g. a full pickle of the ODIN release) to a state_dict.

Full pickles run code when loaded, so the project loads them only when their
sha256 is a known release file. For any other pickle you trust, this script
unpickles it once, explicitly, and saves only its tensors:

    python code/convert_checkpoint.py models/densenet100.pth models/densenet100.state_dict.pt
    mv models/densenet100.state_dict.pt models/densenet100.pth

The state_dict loads with ``torch.load(weights_only=True)``: no code runs.
"""
import argparse
import sys
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # densenet / wideresnet for unpickling

import torch  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path, help="checkpoint to convert (you must trust it)")
    parser.add_argument("target", type=Path, help="where to write the state_dict")
    args = parser.parse_args(argv)
    if args.target.exists():
        print(f"error: {args.target} exists; choose another name", file=sys.stderr)
        return 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        obj = torch.load(args.source, map_location="cpu", weights_only=False)
    if isinstance(obj, torch.nn.Module):
        obj = obj.state_dict()
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = obj["state_dict"]
    torch.save({k: v.clone() for k, v in obj.items()}, args.target)
    print(f"wrote {len(obj)} tensors to {args.target}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
