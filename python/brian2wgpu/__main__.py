"""``python -m brian2wgpu``: versions, the adapters wgpu sees, and what backend 'auto'
picks and why."""

import sys

from . import __version__, auto_choice, list_adapters, wgpu_version


def main():
    import brian2
    print(f"brian2wgpu {__version__} (wgpu {wgpu_version}), Brian2 {brian2.__version__}, "
          f"Python {sys.version.split()[0]}")
    adapters = list_adapters()
    if not adapters:
        print("adapters: none")
    for i, a in enumerate(adapters):
        print(f"[{i}] {a['summary']}")
    print(f"backend 'auto' picks: {auto_choice(adapters)}")
    if adapters:
        print("choose one by index or name: prefs.devices.wgpu.adapter = '0', or "
              "BRIAN2WGPU_ADAPTER=0 in a worker's environment")
    return 0


if __name__ == "__main__":
    sys.exit(main())
