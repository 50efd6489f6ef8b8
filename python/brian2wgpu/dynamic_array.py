"""Brian2's one-dimensional dynamic arrays (synapse variables, spike monitor records) for the
wgpu device, on numpy storage allocated zeroed by the operating system.

Brian2 2.11 keeps them in C++ vectors (`brian2.memory.cythondynamicarray`) that write
zeros over every new element when they grow. Growing a synapse variable to millions of
elements then costs a pass over memory that nothing reads: a variable the user never sets
stays zero, and the synapse indices are overwritten straight away. `np.zeros` takes its
memory from `calloc`, whose large blocks are fresh zero pages from the kernel, so growth
costs a copy of the old contents only. Same behaviour otherwise: growth by a factor,
entries removed by shrinking to a smaller size read as zero when the array grows again,
`shrink` frees the unused memory.
"""

import numpy as np

__all__ = ["DynamicArray1D"]


class DynamicArray1D:
    """A growable 1-d array with the interface Brian2's runtime device uses (`data`,
    `resize`, `shrink`, `shape`, `len`, item access)."""

    __slots__ = ("dtype", "factor", "_buffer", "_size")

    def __init__(self, size, dtype=np.float64, factor=2.0):
        self.dtype = np.dtype(dtype)
        self.factor = float(factor)
        self._buffer = np.zeros(size, dtype=self.dtype)
        self._size = int(size)

    @property
    def data(self):
        """A view of the live elements (a new view after each growth)."""
        return self._buffer[:self._size]

    @property
    def shape(self):
        return (self._size,)

    def __len__(self):
        return self._size

    def __getitem__(self, item):
        return self.data[item]

    def __setitem__(self, item, value):
        self.data[item] = value

    def resize(self, new_size):
        new_size = int(new_size)
        if new_size < 0:
            raise ValueError(f"cannot resize a dynamic array to {new_size} elements")
        capacity = len(self._buffer)
        if new_size > capacity:
            grown = max(new_size, int(capacity * self.factor) + 1)
            buffer = np.zeros(grown, dtype=self.dtype)
            buffer[:self._size] = self._buffer[:self._size]
            self._buffer = buffer
        elif new_size < self._size:
            self._buffer[new_size:self._size] = 0
        self._size = new_size

    def shrink(self, new_size):
        """Keep the first `new_size` elements and free the memory beyond them."""
        new_size = int(new_size)
        if new_size > self._size:
            return
        self._buffer = self._buffer[:new_size].copy()
        self._size = new_size

    def get_capsule(self):
        raise NotImplementedError(
            "wgpu device: its dynamic arrays live in numpy memory and have no C++ object "
            "for Cython code; the device runs host code through numpy")
