"""An ordinary program, run from its own folder: imports a module from there, in the main and
in a spawned Pool's workers, and reports what its interpreter sees (one JSON line)."""
import json
import multiprocessing as mp
import sys

import helper_mod

if __name__ == "__main__":
    with mp.get_context("spawn").Pool(2) as pool:
        tripled = pool.map(helper_mod.triple, range(4))
    print(json.dumps({"version": list(sys.version_info[:2]), "executable": sys.executable,
                      "value": helper_mod.VALUE, "tripled": tripled, "path": sys.path,
                      "mpdash": getattr(sys.modules.get("mpdash"), "__file__", None)}),
          flush=True)
