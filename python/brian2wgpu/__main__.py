"""``python -m brian2wgpu``: list the adapters wgpu sees and what backend 'auto' picks."""

import sys

from . import __version__, auto_backend, list_adapters


def main():
    print(f"brian2wgpu {__version__}")
    adapters = list_adapters()
    if not adapters:
        print("no wgpu adapter found (install a Vulkan driver, e.g. mesa-vulkan-drivers)")
    for i, a in enumerate(adapters):
        print(f"[{i}] {a['summary']}")
    backend, adapter = auto_backend()
    if backend == "gpu":
        print(f"backend 'auto' picks: gpu on '{adapter['name']}' ({adapter['device_type']}, "
              f"{adapter['backend']}{', float64' if adapter['f64'] else ', float32 only'})")
    else:
        print("backend 'auto' picks: cpu (the interpreter)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
