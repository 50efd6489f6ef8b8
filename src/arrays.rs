//! Host arrays as both runtimes take them: typed views of numpy's arrays for one kernel
//! call ([`ArrayMut`]), the engine's raw array handles ([`RawArray`]) and the per-call
//! parameters ([`RunArgs`]). The interpreter runs on them directly; the GPU backend
//! uploads from and downloads into them.

use crate::ir::Type;

/// An engine-owned array, shared across worker threads. Blocks write disjoint ranges
/// (checked by `Program::parallel_safe`), so the aliasing is sound.
#[derive(Clone, Copy, Debug)]
pub struct RawArray {
    pub ptr: *mut u8,
    pub len: usize,
    pub ty: Type,
}
unsafe impl Send for RawArray {}
unsafe impl Sync for RawArray {}

impl RawArray {
    /// The array as a slice of `T`.
    ///
    /// # Safety
    /// `T` must be the array's element type and the memory live and unaliased for `'a`.
    #[inline]
    pub(crate) unsafe fn slice<'a, T>(self) -> &'a mut [T] {
        unsafe { std::slice::from_raw_parts_mut(self.ptr as *mut T, self.len) }
    }
}

/// A host array handed to the interpreter (booleans as one byte each, like numpy).
pub enum ArrayMut<'a> {
    Bool(&'a mut [u8]),
    I32(&'a mut [i32]),
    I64(&'a mut [i64]),
    F32(&'a mut [f32]),
    F64(&'a mut [f64]),
    /// For constants (their value is in the kernel).
    None,
}

impl ArrayMut<'_> {
    pub fn raw(&mut self) -> RawArray {
        let (ptr, len, ty) = match self {
            ArrayMut::Bool(s) => (s.as_mut_ptr(), s.len(), Type::Bool),
            ArrayMut::I32(s) => (s.as_mut_ptr() as *mut u8, s.len(), Type::I32),
            ArrayMut::I64(s) => (s.as_mut_ptr() as *mut u8, s.len(), Type::I64),
            ArrayMut::F32(s) => (s.as_mut_ptr() as *mut u8, s.len(), Type::F32),
            ArrayMut::F64(s) => (s.as_mut_ptr() as *mut u8, s.len(), Type::F64),
            ArrayMut::None => (std::ptr::null_mut(), 0, Type::Bool),
        };
        RawArray { ptr, len, ty }
    }
}

/// Per-invocation parameters: element count and the random stream's key.
#[derive(Debug, Clone, Copy, Default)]
pub struct RunArgs<'a> {
    /// Elements (or positions in `list`) to run over.
    pub n: usize,
    pub seed: u64,
    pub kernel_id: u32,
    pub step: i64,
    /// Run over these element indices (e.g. the spikes of this step) instead of 0..n.
    pub list: Option<&'a [i32]>,
    /// Where position 0 of record (`Index::Pos`) arrays lies.
    pub pos_base: usize,
}
