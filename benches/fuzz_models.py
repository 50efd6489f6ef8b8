"""More of the model fuzz test (tests/python/test_fuzz_models.py): random models from
tests/python/modelgen.py on numpy and on the device, compared as the test does.

    python benches/fuzz_models.py [--seed 1] [--models 2000] [--backends cpu,gpu]
"""

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests",
                                "python"))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--models", type=int, default=2000)
    ap.add_argument("--backends", default="cpu,gpu")
    args = ap.parse_args()
    import modelgen
    import test_fuzz_models as fuzz
    models = modelgen.generate_all(args.seed, args.models)
    failures = 0
    t0 = time.perf_counter()
    for k, m in enumerate(models):
        for backend in args.backends.split(","):
            try:
                fuzz.check(m, backend)
            except AssertionError as exc:
                failures += 1
                print(f"model {k} on {backend}: {str(exc)[:1000]}", flush=True)
    print(f"{len(models)} models (seed {args.seed}), {failures} failures, "
          f"{time.perf_counter() - t0:.0f} s")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
