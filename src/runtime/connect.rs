//! Synapse creation in the engine: Brian2's `synapses_create_generator` template.
//!
//! `connect(condition=..., p=..., n=...)` and the generator syntax (`j='k for k in
//! range(...)/sample(...) if ...'`, or `i=...` over targets) come here as up to three
//! interpreter programs compiled from Brian2's code blocks:
//! - `rows` (`setup_iterator`, plus `create_cond` when it depends on the outer index
//!   only) once per outer index, giving the iterator's bounds and the row's condition;
//! - `element` (`generator_expr`) per candidate of the inner iteration, giving the result
//!   index;
//! - `candidate` (`create_cond` and `update`) per candidate whose result index is known.
//!
//! Rows run in parallel (rayon) in chunks of a fixed size, candidates a block at a time,
//! so that the random streams (keyed by chunk, block and position, never by thread) and
//! the synapses' order are the same on every machine: Brian2's order, by outer index and
//! then in generation order.

use rayon::prelude::*;
use thiserror::Error;

use crate::arrays::{RawArray, RunArgs};
use crate::cpu::{CpuError, Program};
use crate::ir::{
    BinaryOp, Bound, CmpOp, Expr, ExprKind, Func, Index, Kernel, Local, Stmt, Type, VarKind,
    Variable, bounds, eval_bound,
};
use crate::rng;

/// Candidate ranges at most this long are evaluated, not bounded (see [`Pruner`]).
const LEAF: i64 = 48;
/// A row's range is first bounded in this many pieces; where none is surely false, the
/// condition is not one bounds can prune and the row is evaluated whole.
const PROBES: i64 = 8;

/// Outer indices per parallel task: fixed, so results never depend on the thread count.
const ROWS_PER_CHUNK: usize = 64;
/// Candidates evaluated per interpreter call.
const BLOCK: usize = 4096;
/// Random stream ids of the stages (the seed is drawn afresh for every `connect`).
const STREAM_ROWS: u32 = 1;
const STREAM_ELEMENT: u32 = 2;
const STREAM_CANDIDATE: u32 = 3;
const STREAM_SAMPLE: u32 = 4;

#[derive(Debug, Error)]
pub enum ConnectError {
    #[error(transparent)]
    Cpu(#[from] CpuError),
    /// An index out of range without `skip_if_invalid` (Python's `IndexError`).
    #[error("{0}")]
    Index(String),
    /// A bad iterator argument (Python's `ValueError`).
    #[error("{0}")]
    Value(String),
}

/// What a kernel variable that is not a model array holds: the template's own values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The outer loop's index without offset (`_i` for `j=...`, `_j` for `i=...`).
    Outer,
    /// The outer index plus the group's offset: indexes the outer side's arrays.
    OuterRaw,
    /// The generator's inner variable (`k` in `k for k in range(...)`).
    Inner,
    /// The result index the element expression gives (`_j` for `j=...`).
    Result,
    /// The result index plus the other group's offset.
    ResultRaw,
    IterLow,
    IterHigh,
    IterStep,
    IterP,
    IterSize,
    Cond,
    N,
    /// Written by Brian2's code but not needed here (`_pre_idx`, `_post_idx`).
    Scratch,
    /// Per candidate, the factor on `rand()` in a thinned condition (see [`Thinning`]).
    Scale,
}

const ROLES: usize = 14;

impl Role {
    pub fn from_name(name: &str) -> Option<Role> {
        Some(match name {
            "outer" => Role::Outer,
            "outer_raw" => Role::OuterRaw,
            "inner" => Role::Inner,
            "result" => Role::Result,
            "result_raw" => Role::ResultRaw,
            "iter_low" => Role::IterLow,
            "iter_high" => Role::IterHigh,
            "iter_step" => Role::IterStep,
            "iter_p" => Role::IterP,
            "iter_size" => Role::IterSize,
            "cond" => Role::Cond,
            "n" => Role::N,
            "scratch" => Role::Scratch,
            _ => return None,
        })
    }
}

/// Where a kernel variable's memory comes from.
#[derive(Debug, Clone, Copy)]
pub enum Binding {
    /// A model array (read-only here), borrowed from the caller.
    Model(RawArray),
    Aux(Role),
    /// A constant (its value is in the kernel).
    None,
}

pub struct Stage<'a> {
    pub program: &'a Program,
    /// The program's kernel (for bounds of its values over ranges of candidates).
    pub kernel: &'a Kernel,
    /// Per kernel variable, in the kernel's order.
    pub bindings: Vec<Binding>,
    /// Per kernel variable, its type (for the aux buffers' views).
    pub types: Vec<Type>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Iteration {
    Range,
    /// `sample(..., p=...)`: each element independently.
    SampleP,
    /// `sample(..., size=...)`: a subset of fixed size.
    SampleSize,
}

pub struct Generator<'a> {
    pub rows: Stage<'a>,
    /// None when the element expression is the inner variable itself (`k for k in ...`,
    /// every `condition=` form): the result index is the inner value.
    pub element: Option<Stage<'a>>,
    pub candidate: Option<Stage<'a>>,
    pub iteration: Iteration,
    pub outer_size: usize,
    pub result_size: usize,
    pub outer_offset: i32,
    pub result_offset: i32,
    /// `rows` computes `_cond` (the condition does not depend on the result index).
    pub row_condition: bool,
    /// `candidate` computes `_cond`.
    pub candidate_condition: bool,
    /// `candidate` computes `_n`; otherwise every pair repeats `n` times.
    pub candidate_n: bool,
    pub n: i32,
    /// The condition reads result-side arrays: check the result index before it.
    pub result_index_used: bool,
    pub skip_if_invalid: bool,
    /// Brian2's name of the result index in messages (`j`, or `i` for `i=...`).
    pub result_name: &'a str,
    pub seed: u64,
}

/// Per-role buffers of one block, 8-byte aligned and viewed at each variable's type.
struct Buffers {
    data: Vec<Vec<u64>>,
    /// Scratch for a block's conditions and repetition counts, as numbers.
    keep: Vec<f64>,
    reps: Vec<f64>,
}

impl Buffers {
    fn new() -> Self {
        Buffers {
            data: (0..ROLES).map(|_| vec![0u64; BLOCK]).collect(),
            keep: Vec::with_capacity(BLOCK),
            reps: Vec::new(),
        }
    }
    fn raw(&mut self, role: Role, ty: Type) -> RawArray {
        let buf = &mut self.data[role as usize];
        RawArray {
            ptr: buf.as_mut_ptr() as *mut u8,
            len: BLOCK,
            ty,
        }
    }
    /// The outer indices of the next kernel call, and the same with the group's offset.
    fn set_outer(&mut self, outer: &[i32], offset: i32) {
        self.i32s(Role::Outer)[..outer.len()].copy_from_slice(outer);
        for (r, &o) in self.i32s(Role::OuterRaw).iter_mut().zip(outer) {
            *r = o + offset;
        }
    }

    fn i32s(&mut self, role: Role) -> &mut [i32] {
        bytemuck::cast_slice_mut(&mut self.data[role as usize][..BLOCK / 2])
    }
    /// Elements `..m` of `role`, written by a kernel variable of type `ty`, as numbers.
    fn values(&self, role: Role, ty: Type, m: usize, out: &mut Vec<f64>) {
        let buf = &self.data[role as usize];
        out.clear();
        match ty {
            Type::Bool => {
                let v: &[u8] = bytemuck::cast_slice(buf);
                out.extend(v[..m].iter().map(|&b| (b != 0) as i32 as f64));
            }
            Type::I32 => {
                let v: &[i32] = bytemuck::cast_slice(buf);
                out.extend(v[..m].iter().map(|&x| x as f64));
            }
            Type::I64 => {
                let v: &[i64] = bytemuck::cast_slice(buf);
                out.extend(v[..m].iter().map(|&x| x as f64));
            }
            Type::F32 => {
                let v: &[f32] = bytemuck::cast_slice(buf);
                out.extend(v[..m].iter().map(|&x| x as f64));
            }
            Type::F64 => out.extend_from_slice(&buf_f64(buf)[..m]),
        }
    }

    /// Element `k` of `role` as written by a kernel variable of type `ty`.
    fn get(&self, role: Role, ty: Type, k: usize) -> f64 {
        let buf = &self.data[role as usize];
        let bytes: &[u8] = bytemuck::cast_slice(buf);
        let at = k * ty.size();
        match ty {
            Type::Bool => (bytes[k] != 0) as i32 as f64,
            Type::I32 => i32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap()) as f64,
            Type::I64 => i64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap()) as f64,
            Type::F32 => f32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap()) as f64,
            Type::F64 => f64::from_ne_bytes(bytes[at..at + 8].try_into().unwrap()),
        }
    }
}

impl Stage<'_> {
    /// The kernel variable bound to `role`, if the stage has one.
    fn var_of(&self, role: Role) -> Option<usize> {
        self.bindings
            .iter()
            .position(|b| matches!(b, Binding::Aux(r) if *r == role))
    }

    /// The type of the variable bound to `role`, if the stage has one.
    fn role_type(&self, role: Role) -> Option<Type> {
        self.var_of(role).map(|v| self.types[v])
    }

    fn run(
        &self,
        bufs: &mut Buffers,
        n: usize,
        seed: u64,
        stream: u32,
        step: i64,
    ) -> Result<(), ConnectError> {
        if n == 0 {
            return Ok(());
        }
        let raws: Vec<RawArray> = self
            .bindings
            .iter()
            .zip(&self.types)
            .map(|(b, &ty)| match *b {
                Binding::Model(raw) => raw,
                Binding::Aux(role) => bufs.raw(role, ty),
                Binding::None => RawArray {
                    ptr: std::ptr::null_mut(),
                    len: 0,
                    ty: Type::Bool,
                },
            })
            .collect();
        let args = RunArgs {
            n,
            seed,
            kernel_id: stream,
            step,
            list: None,
            pos_base: 0,
        };
        // Safety: model arrays are borrowed by the caller for the whole call and only
        // read by these kernels; aux buffers belong to this task and hold BLOCK elements
        // of up to 8 bytes, at least `n`.
        unsafe { self.program.run_raw(&raws, &args)? };
        Ok(())
    }
}

fn buf_f64(buf: &[u64]) -> &[f64] {
    bytemuck::cast_slice(buf)
}

/// Uniform numbers of one outer index for the samplers: four per Philox block, 32 bits
/// each (enough for geometric gaps and Bernoulli trials; half the Philox work of 53 bits).
struct RowRandom {
    seed: u64,
    row: i64,
    block: u32,
    words: [u32; 4],
    used: usize,
}

impl RowRandom {
    fn new(seed: u64, row: usize) -> Self {
        RowRandom {
            seed,
            row: row as i64,
            block: 0,
            words: [0; 4],
            used: 4,
        }
    }
    /// A uniform in (0, 1] (finite logarithm).
    #[inline]
    fn next(&mut self) -> f64 {
        if self.used == 4 {
            let ctr = rng::counter(self.block, self.row, 0, STREAM_SAMPLE, 0);
            self.words = rng::philox4x32_10(ctr, rng::key(self.seed));
            self.block = self.block.wrapping_add(1);
            self.used = 0;
        }
        let w = self.words[self.used];
        self.used += 1;
        (w as f64 + 1.0) * (1.0 / 4_294_967_296.0)
    }
}

/// Call `f` for each position of `m0..m1` kept with probability `p` (0 < p < 1),
/// independently, in order: geometric gaps between kept positions, one draw each.
fn geometric(
    rnd: &mut RowRandom,
    p: f64,
    m0: i64,
    m1: i64,
    f: &mut dyn FnMut(i64) -> Result<(), ConnectError>,
) -> Result<(), ConnectError> {
    let inv_log = 1.0 / (-p).ln_1p();
    let mut m = m0;
    loop {
        let gap = rnd.next().ln() * inv_log; // >= 0: `as` truncates = floors
        if gap >= (m1 - m) as f64 {
            return Ok(());
        }
        m += gap as i64;
        f(m)?;
        m += 1;
    }
}

/// Python's `range(low, high, step)`: its length.
fn range_len(low: i64, high: i64, step: i64) -> i64 {
    if step > 0 && low < high {
        (high - low - 1) / step + 1
    } else if step < 0 && low > high {
        (low - high - 1) / (-step) + 1
    } else {
        0
    }
}

/// Created synapses: (outer index + offset, result index + offset) pairs in Brian2's
/// order, as made by the chunks of outer rows, and how many each outer and each result
/// index got (`N_outgoing`/`N_incoming`).
pub struct Created {
    parts: Vec<(Vec<i32>, Vec<i32>)>,
    pub outer_counts: Vec<i32>,
    pub result_counts: Vec<i32>,
}

impl Created {
    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.0.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Copy the pairs, in order, into `outer` and `result` (both [`len`](Self::len) long),
    /// in parallel: straight into the synapse arrays, without a concatenated copy first.
    pub fn write_into(&self, outer: &mut [i32], result: &mut [i32]) {
        assert!(outer.len() == self.len() && result.len() == self.len());
        let mut pieces = Vec::with_capacity(self.parts.len());
        let (mut o, mut r) = (outer, result);
        for part in &self.parts {
            let (oh, ot) = std::mem::take(&mut o).split_at_mut(part.0.len());
            let (rh, rt) = std::mem::take(&mut r).split_at_mut(part.1.len());
            pieces.push((part, oh, rh));
            (o, r) = (ot, rt);
        }
        crate::threads::install(|| {
            pieces.into_par_iter().for_each(|(part, o, r)| {
                o.copy_from_slice(&part.0);
                r.copy_from_slice(&part.1);
            })
        });
    }
}

/// How often each value in `offset..offset + size` occurs in `pieces` (indexed from
/// `offset`; `Err` with a value outside that range), counted in parallel.
pub fn count_indices(pieces: &[&[i32]], offset: i32, size: usize) -> Result<Vec<i32>, i32> {
    let threads = crate::threads::pool().current_num_threads().max(1);
    let total: usize = pieces.iter().map(|p| p.len()).sum();
    if total < (1 << 16) || threads == 1 {
        return count_serial(pieces, offset, size);
    }
    // One count array per worker, not per rayon split: `size` may be millions.
    let split: Vec<&[i32]>;
    let pieces = if pieces.len() < threads {
        split = pieces
            .iter()
            .flat_map(|p| p.chunks(p.len().div_ceil(threads).max(1)))
            .collect();
        &split[..]
    } else {
        pieces
    };
    let per = pieces.len().div_ceil(threads);
    let counted: Vec<Result<Vec<i32>, i32>> = crate::threads::install(|| {
        pieces
            .par_chunks(per)
            .map(|group| count_serial(group, offset, size))
            .collect()
    });
    sum_counts(counted, size)
}

/// The per-worker count arrays added up (the first error if any worker found one).
fn sum_counts(counted: Vec<Result<Vec<i32>, i32>>, size: usize) -> Result<Vec<i32>, i32> {
    let mut sum: Option<Vec<i32>> = None;
    for c in counted {
        let c = c?;
        match &mut sum {
            None => sum = Some(c),
            Some(t) => t.iter_mut().zip(&c).for_each(|(a, b)| *a += b),
        }
    }
    Ok(sum.unwrap_or_else(|| vec![0; size]))
}

fn count_serial(pieces: &[&[i32]], offset: i32, size: usize) -> Result<Vec<i32>, i32> {
    let mut counts = vec![0i32; size];
    for piece in pieces {
        count_into(&mut counts, piece, offset)?;
    }
    Ok(counts)
}

fn count_into(counts: &mut [i32], piece: &[i32], offset: i32) -> Result<(), i32> {
    // Sorted indices (connect()'s sources) come in runs of equal values, counted a run at
    // a time: one increment per value would wait on the previous one to the same counter.
    // Scattered indices are counted one by one, which costs half as much as splitting
    // them into runs of one. Decided per block from its first values.
    for block in piece.chunks(1 << 14) {
        let head = &block[..block.len().min(64)];
        let equal = head.windows(2).filter(|w| w[0] == w[1]).count();
        if 2 * equal >= head.len() {
            for run in block.chunk_by(|a, b| a == b) {
                let at = run[0] as i64 - offset as i64;
                match counts.get_mut(at as usize) {
                    Some(c) if at >= 0 => *c += run.len() as i32,
                    _ => return Err(run[0]),
                }
            }
        } else {
            for &value in block {
                let at = value as i64 - offset as i64;
                match counts.get_mut(at as usize) {
                    Some(c) if at >= 0 => *c += 1,
                    _ => return Err(value),
                }
            }
        }
    }
    Ok(())
}

/// `dst[k] = src[k] + offset` and how often each value in `0..size` occurs in `src`, in one
/// pass over `src`, in parallel. `Err` carries a value outside that range; `dst` is then
/// partly written.
pub fn copy_counting(
    src: &[i32],
    dst: &mut [i32],
    offset: i32,
    size: usize,
) -> Result<Vec<i32>, i32> {
    assert_eq!(src.len(), dst.len());
    // Blocks small enough that the count reads what the copy just brought into cache.
    const BLOCK: usize = 1 << 13;
    let copy_count = |counts: &mut [i32], s: &[i32], d: &mut [i32]| -> Result<(), i32> {
        for (s, d) in s.chunks(BLOCK).zip(d.chunks_mut(BLOCK)) {
            for (d, &s) in d.iter_mut().zip(s) {
                *d = s.wrapping_add(offset);
            }
            count_into(counts, s, 0)?;
        }
        Ok(())
    };
    let threads = crate::threads::pool().current_num_threads().max(1);
    if src.len() < (1 << 16) || threads == 1 {
        let mut counts = vec![0i32; size];
        copy_count(&mut counts, src, dst)?;
        return Ok(counts);
    }
    // One count array per worker, not per rayon split: `size` may be millions.
    let per = src.len().div_ceil(threads);
    let counted: Vec<Result<Vec<i32>, i32>> = crate::threads::install(|| {
        src.par_chunks(per)
            .zip(dst.par_chunks_mut(per))
            .map(|(s, d)| {
                let mut counts = vec![0i32; size];
                copy_count(&mut counts, s, d).map(|()| counts)
            })
            .collect()
    });
    sum_counts(counted, size)
}

/// The candidates of one block, and the outer rows they came from.
struct Block {
    outer: Vec<i32>,
    inner: Vec<i32>,
    /// Per candidate, the factor on `rand()` of a thinned condition (1: not thinned).
    scale: Vec<f64>,
}

impl Generator<'_> {
    pub fn run(&self) -> Result<Created, ConnectError> {
        let thinning = self.thinning()?;
        let thinned = match (&thinning, &self.candidate) {
            (Some(t), Some(c)) => Some(t.stage(c)),
            _ => None,
        };
        let cand = thinned.as_ref().or(self.candidate.as_ref());
        let pruner = self.pruner(thinning.as_ref().map(|t| &t.p));
        let pruner = pruner.as_ref();
        let chunks = self.outer_size.div_ceil(ROWS_PER_CHUNK);
        let parts: Vec<(Vec<i32>, Vec<i32>)> = crate::threads::install(|| {
            (0..chunks)
                .into_par_iter()
                // Scratch buffers per worker, not per chunk (zeroing them cost more than
                // sampling sparse rows).
                .map_init(Buffers::new, |bufs, c| {
                    let lo = c * ROWS_PER_CHUNK;
                    let hi = (lo + ROWS_PER_CHUNK).min(self.outer_size);
                    self.chunk(cand, pruner, bufs, c, lo, hi)
                })
                .collect::<Result<_, _>>()
        })?;
        let mut outer_counts = vec![0i32; self.outer_size];
        for (o, _) in &parts {
            for w in o.chunk_by(|a, b| a == b) {
                outer_counts[(w[0] - self.outer_offset) as usize] += w.len() as i32;
            }
        }
        let all: Vec<&[i32]> = parts.iter().map(|p| p.1.as_slice()).collect();
        let result_counts = count_indices(&all, self.result_offset, self.result_size)
            .map_err(|j| self.index_error(j - self.result_offset))?;
        Ok(Created {
            parts,
            outer_counts,
            result_counts,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn chunk(
        &self,
        cand: Option<&Stage>,
        pruner: Option<&Pruner>,
        bufs: &mut Buffers,
        chunk: usize,
        lo: usize,
        hi: usize,
    ) -> Result<(Vec<i32>, Vec<i32>), ConnectError> {
        let rows = hi - lo;
        bufs.set_outer(
            (lo as i32..hi as i32).collect::<Vec<_>>().as_slice(),
            self.outer_offset,
        );
        // Per row: the iterator's arguments and the row's condition.
        let stage = &self.rows;
        stage.run(bufs, rows, self.seed, STREAM_ROWS, chunk as i64)?;
        let get = |b: &Buffers, role: Role, k: usize, default: f64| {
            stage.role_type(role).map_or(default, |t| b.get(role, t, k))
        };
        let args: Vec<_> = (0..rows)
            .map(|k| {
                (
                    !self.row_condition || get(bufs, Role::Cond, k, 1.0) != 0.0,
                    get(bufs, Role::IterLow, k, 0.0) as i64,
                    get(bufs, Role::IterHigh, k, 0.0) as i64,
                    get(bufs, Role::IterStep, k, 1.0) as i64,
                    get(bufs, Role::IterP, k, 1.0),
                    get(bufs, Role::IterSize, k, 0.0) as i64,
                )
            })
            .collect();

        let mut out = (Vec::new(), Vec::new());
        let mut block = Block {
            outer: Vec::with_capacity(BLOCK),
            inner: Vec::with_capacity(BLOCK),
            scale: Vec::with_capacity(BLOCK),
        };
        let mut block_no = 0i64;
        let step_of = |b: i64| ((chunk as i64) << 32) | b;
        let direct = self.element.is_none() && cand.is_none();
        for (k, &(cond, low, high, step, p, size)) in args.iter().enumerate() {
            if !cond {
                continue;
            }
            let row = lo + k;
            if step == 0 {
                return Err(ConnectError::Value(
                    "range() arg 3 must not be zero (the generator's step)".into(),
                ));
            }
            let outer_raw = row as i32 + self.outer_offset;
            // The candidates `first, first + stride, ...` (`count` of them), in order.
            let mut emit = |first: i64,
                            stride: i64,
                            count: i64,
                            scale: f64,
                            block: &mut Block,
                            bufs: &mut Buffers| {
                if direct {
                    // Nothing to evaluate per candidate: the inner value is the result.
                    for c in 0..count {
                        let j = (first + c * stride) as i32;
                        if j < 0 || j as usize >= self.result_size {
                            if self.skip_if_invalid {
                                continue;
                            }
                            return Err(self.index_error(j));
                        }
                        for _ in 0..self.n.max(0) {
                            out.0.push(outer_raw);
                            out.1.push(j + self.result_offset);
                        }
                    }
                    return Ok(());
                }
                let mut done = 0;
                while done < count {
                    let take = ((BLOCK - block.outer.len()) as i64).min(count - done);
                    let start = first + done * stride;
                    block
                        .outer
                        .extend(std::iter::repeat_n(row as i32, take as usize));
                    block
                        .inner
                        .extend((0..take).map(|c| (start + c * stride) as i32));
                    block
                        .scale
                        .extend(std::iter::repeat_n(scale, take as usize));
                    done += take;
                    if block.outer.len() == BLOCK {
                        self.flush(cand, block, bufs, step_of(block_no), &mut out)?;
                        block_no += 1;
                    }
                }
                Ok::<(), ConnectError>(())
            };
            let total = range_len(low, high, step);
            match self.iteration {
                Iteration::Range => {
                    let mut rnd = RowRandom::new(self.seed, row);
                    let mut take = |m0: i64, m1: i64, phi: f64| {
                        if phi >= 1.0 {
                            emit(low + m0 * step, step, m1 - m0, 1.0, &mut block, bufs)
                        } else {
                            // Thinning: each position with probability `phi`; its
                            // condition then tests rand()*phi < p.
                            geometric(&mut rnd, phi, m0, m1, &mut |m| {
                                emit(low + m * step, step, 1, phi, &mut block, bufs)
                            })
                        }
                    };
                    match pruner {
                        Some(pr) => pr.walk(row, low, step, total, &mut take)?,
                        None => take(0, total, 1.0)?,
                    }
                }
                Iteration::SampleP => {
                    if p <= 0.0 || p.is_nan() {
                        continue;
                    }
                    if p >= 1.0 {
                        emit(low, step, total, 1.0, &mut block, bufs)?;
                        continue;
                    }
                    let mut rnd = RowRandom::new(self.seed, row);
                    if p < 0.25 {
                        // Brian2's jump algorithm.
                        geometric(&mut rnd, p, 0, total, &mut |m| {
                            emit(low + m * step, step, 1, 1.0, &mut block, bufs)
                        })?;
                    } else {
                        for m in 0..total {
                            if rnd.next() <= p {
                                emit(low + m * step, step, 1, 1.0, &mut block, bufs)?;
                            }
                        }
                    }
                }
                Iteration::SampleSize => {
                    let mut size = size;
                    if size < 0 {
                        if self.skip_if_invalid {
                            continue;
                        }
                        return Err(ConnectError::Index(format!(
                            "Requested sample size {size} is negative."
                        )));
                    }
                    if size > total {
                        if !self.skip_if_invalid {
                            return Err(ConnectError::Index(format!(
                                "Requested sample size {size} is bigger than the population \
                                 size {total}."
                            )));
                        }
                        size = total;
                    }
                    let mut rnd = RowRandom::new(self.seed, row);
                    for m in sample_fixed(total, size, &mut rnd) {
                        emit(low + m * step, step, 1, 1.0, &mut block, bufs)?;
                    }
                }
            }
        }
        self.flush(cand, &mut block, bufs, step_of(block_no), &mut out)?;
        Ok(out)
    }

    fn index_error(&self, index: i32) -> ConnectError {
        ConnectError::Index(format!(
            "index {}={index} outside allowed range from 0 to {}",
            self.result_name,
            self.result_size as i64 - 1
        ))
    }

    /// Evaluate the candidates of `block` and append the synapses they make.
    fn flush(
        &self,
        cand: Option<&Stage>,
        block: &mut Block,
        bufs: &mut Buffers,
        step: i64,
        out: &mut (Vec<i32>, Vec<i32>),
    ) -> Result<(), ConnectError> {
        let mut m = block.outer.len();
        if m == 0 {
            return Ok(());
        }
        bufs.set_outer(&block.outer, self.outer_offset);
        bufs.i32s(Role::Inner)[..m].copy_from_slice(&block.inner);
        let scale_ty = cand.and_then(|c| c.role_type(Role::Scale));
        if let Some(t) = scale_ty {
            let buf = &mut bufs.data[Role::Scale as usize];
            if t == Type::F32 {
                let v: &mut [f32] = bytemuck::cast_slice_mut(&mut buf[..BLOCK / 2]);
                for (x, &s) in v.iter_mut().zip(&block.scale) {
                    *x = s as f32;
                }
            } else {
                let v: &mut [f64] = bytemuck::cast_slice_mut(&mut buf[..BLOCK]);
                v[..m].copy_from_slice(&block.scale);
            }
        }
        block.outer.clear();
        block.inner.clear();
        block.scale.clear();
        match &self.element {
            Some(stage) => stage.run(bufs, m, self.seed, STREAM_ELEMENT, step)?,
            None => {
                let inner: Vec<i32> = bufs.i32s(Role::Inner)[..m].to_vec();
                bufs.i32s(Role::Result)[..m].copy_from_slice(&inner);
            }
        }
        let size = self.result_size as i32;
        let valid = |j: i32| j >= 0 && j < size;
        if self.result_index_used {
            // The condition reads result-side arrays: only valid indices may reach it.
            let mut kept = 0;
            for k in 0..m {
                let j = bufs.i32s(Role::Result)[k];
                if !valid(j) {
                    if self.skip_if_invalid {
                        continue;
                    }
                    return Err(self.index_error(j));
                }
                for role in [Role::Outer, Role::OuterRaw, Role::Inner, Role::Result] {
                    let b = bufs.i32s(role);
                    b[kept] = b[k];
                }
                let sb = &mut bufs.data[Role::Scale as usize];
                match scale_ty {
                    Some(Type::F32) => {
                        let v: &mut [u32] = bytemuck::cast_slice_mut(&mut sb[..]);
                        v[kept] = v[k];
                    }
                    Some(_) => sb[kept] = sb[k],
                    None => {}
                }
                kept += 1;
            }
            m = kept;
        }
        {
            // Out-of-range indices that reach the candidate stage (checked after the
            // condition, as Brian2 does) are read as 0: the condition does not use them.
            let off = self.result_offset;
            let data = &mut bufs.data;
            let (res, raw) = (Role::Result as usize, Role::ResultRaw as usize);
            let (a, b) = if res < raw {
                let (x, y) = data.split_at_mut(raw);
                (&x[res], &mut y[0])
            } else {
                let (x, y) = data.split_at_mut(res);
                (&y[0], &mut x[raw])
            };
            let res: &[i32] = bytemuck::cast_slice(&a[..BLOCK / 2]);
            let raw: &mut [i32] = bytemuck::cast_slice_mut(&mut b[..BLOCK / 2]);
            for k in 0..m {
                raw[k] = if valid(res[k]) { res[k] + off } else { off };
            }
        }
        let (cond_ty, n_ty) = match cand {
            Some(stage) => {
                stage.run(bufs, m, self.seed, STREAM_CANDIDATE, step)?;
                (stage.role_type(Role::Cond), stage.role_type(Role::N))
            }
            None => (None, None),
        };
        // Typed views, taken once (the per-element accessors cost more than the test).
        let mut keep = std::mem::take(&mut bufs.keep);
        let mut reps = std::mem::take(&mut bufs.reps);
        let keep = match (self.candidate_condition, cond_ty) {
            (true, Some(t)) => {
                bufs.values(Role::Cond, t, m, &mut keep);
                Some(keep)
            }
            _ => None,
        };
        let reps = match (self.candidate_n, n_ty) {
            (true, Some(t)) => {
                bufs.values(Role::N, t, m, &mut reps);
                Some(reps)
            }
            _ => None,
        };
        let view =
            |role: Role| -> &[i32] { bytemuck::cast_slice(&bufs.data[role as usize][..BLOCK / 2]) };
        let (res, outer_raw, result_raw) = (
            view(Role::Result),
            view(Role::OuterRaw),
            view(Role::ResultRaw),
        );
        let mut failed = None;
        if reps.is_none() && self.n == 1 {
            // One synapse per kept candidate (most forms): written without branches.
            let base = out.0.len();
            out.0.resize(base + m, 0);
            out.1.resize(base + m, 0);
            let (o, r) = (&mut out.0[base..], &mut out.1[base..]);
            let mut w = 0;
            for k in 0..m {
                let kept = keep.as_ref().is_none_or(|c| c[k] != 0.0);
                let ok = valid(res[k]);
                if kept && !ok && !self.skip_if_invalid {
                    failed = Some(res[k]);
                    break;
                }
                o[w] = outer_raw[k];
                r[w] = result_raw[k];
                w += (kept && ok) as usize;
            }
            out.0.truncate(base + w);
            out.1.truncate(base + w);
        } else {
            for k in 0..m {
                if keep.as_ref().is_some_and(|c| c[k] == 0.0) {
                    continue;
                }
                if !valid(res[k]) {
                    if self.skip_if_invalid {
                        continue;
                    }
                    failed = Some(res[k]);
                    break;
                }
                let n = reps.as_ref().map_or(self.n as i64, |r| r[k] as i64);
                for _ in 0..n.max(0) {
                    out.0.push(outer_raw[k]);
                    out.1.push(result_raw[k]);
                }
            }
        }
        bufs.keep = keep.unwrap_or_default();
        bufs.reps = reps.unwrap_or_default();
        match failed {
            Some(j) => Err(self.index_error(j)),
            None => Ok(()),
        }
    }
}

/// Skips ranges of a `range` iterator where the candidate condition is false for every
/// member, by interval arithmetic over the element and candidate kernels
/// ([`crate::ir::bounds`]): `connect(condition='abs(i-j) < 50')` then evaluates about 100
/// candidates per row, not `N_post`. Only ranges are skipped, never reordered: the
/// synapses and their order are those of the full evaluation.
struct Pruner<'g> {
    generator: &'g Generator<'g>,
    candidate: &'g Stage<'g>,
    /// Per candidate-kernel variable read through the result index: its range bounds.
    hulls: Vec<Option<RangeHull>>,
    cond_local: usize,
    /// The element kernel's local holding the result index.
    result_local: Option<usize>,
    /// `p` of a thinned condition (`... and rand() < p`): its bound over a range is the
    /// thinning probability there.
    p: Option<&'g Expr>,
}

/// Element `k` of a model array as f64 (None where it is out of range).
fn read(raw: &RawArray, k: i64) -> Option<f64> {
    if k < 0 || k as usize >= raw.len || raw.ptr.is_null() {
        return None;
    }
    let k = k as usize;
    // Safety: `raw` is a live model array of `len` elements of type `ty`.
    unsafe {
        Some(match raw.ty {
            Type::Bool => (*raw.ptr.add(k) != 0) as i32 as f64,
            Type::I32 => *(raw.ptr as *const i32).add(k) as f64,
            Type::I64 => *(raw.ptr as *const i64).add(k) as f64,
            Type::F32 => *(raw.ptr as *const f32).add(k) as f64,
            Type::F64 => *(raw.ptr as *const f64).add(k),
        })
    }
}

fn value_bound(raw: &RawArray, k: i64) -> Bound {
    match read(raw, k) {
        Some(v) if raw.ty == Type::Bool => Bound::Bool {
            f: v == 0.0,
            t: v != 0.0,
        },
        Some(v) => Bound::num(v, v),
        None => Bound::Any,
    }
}

/// Bounds of a model array over index ranges (a sparse table: level `k` holds the hull of
/// `2^k` elements from each position), so that a range of candidate targets bounds the
/// target-side values it reads: `sqrt((x_pre - x_post)**2 + ...) < r` on a grid prunes
/// the rows far away.
struct RangeHull {
    levels: Vec<Vec<(f64, f64)>>,
}

/// Arrays above this size get one bound for the whole array (the table's memory).
const RANGE_HULL_MAX: usize = 1 << 22;

impl RangeHull {
    fn new(raw: &RawArray) -> Option<RangeHull> {
        if raw.ty == Type::Bool || raw.len == 0 {
            return None;
        }
        let base: Vec<(f64, f64)> = (0..raw.len)
            .map(|k| {
                let v = read(raw, k as i64).unwrap_or(f64::NAN);
                (v, v)
            })
            .collect();
        if base.iter().any(|v| v.0.is_nan()) {
            return None;
        }
        let mut levels = vec![base];
        if raw.len <= RANGE_HULL_MAX {
            let mut width = 1;
            while 2 * width <= raw.len {
                let prev = levels.last().expect("level 0");
                let next: Vec<(f64, f64)> = (0..=raw.len - 2 * width)
                    .map(|k| {
                        let (a, b) = (prev[k], prev[k + width]);
                        (a.0.min(b.0), a.1.max(b.1))
                    })
                    .collect();
                levels.push(next);
                width *= 2;
            }
        } else {
            let all = levels[0]
                .iter()
                .fold((f64::INFINITY, f64::NEG_INFINITY), |h, v| {
                    (h.0.min(v.0), h.1.max(v.1))
                });
            levels = vec![vec![all]];
        }
        Some(RangeHull { levels })
    }

    /// The bound of elements `lo..=hi` (clamped to the array).
    fn query(&self, lo: f64, hi: f64) -> Bound {
        let n = self.levels[0].len();
        if self.levels.len() == 1 && n == 1 {
            let (a, b) = self.levels[0][0];
            return Bound::num(a, b);
        }
        let lo = lo.max(0.0);
        let hi = hi.min((n - 1) as f64);
        if lo > hi || lo.is_nan() || hi.is_nan() {
            return Bound::Any;
        }
        let (lo, hi) = (lo as usize, hi as usize);
        let k = (usize::BITS - 1 - (hi - lo + 1).leading_zeros()) as usize;
        let (a, b) = (self.levels[k][lo], self.levels[k][hi + 1 - (1 << k)]);
        Bound::num(a.0.min(b.0), a.1.max(b.1))
    }
}

impl Generator<'_> {
    fn pruner<'g>(&'g self, p: Option<&'g Expr>) -> Option<Pruner<'g>> {
        let candidate = self.candidate.as_ref()?;
        if self.iteration != Iteration::Range || !self.candidate_condition {
            return None;
        }
        let cond = candidate.var_of(Role::Cond)?;
        let hulls = candidate
            .bindings
            .iter()
            .zip(&candidate.kernel.vars)
            .map(|(b, v)| match (b, v.index) {
                (Binding::Model(raw), Index::Var(iv))
                    if matches!(candidate.bindings[iv], Binding::Aux(Role::ResultRaw)) =>
                {
                    RangeHull::new(raw)
                }
                _ => None,
            })
            .collect();
        Some(Pruner {
            generator: self,
            candidate,
            hulls,
            cond_local: candidate.kernel.vars[cond].local,
            result_local: self
                .element
                .as_ref()
                .and_then(|e| e.var_of(Role::Result).map(|v| e.kernel.vars[v].local)),
            p,
        })
    }

    /// The candidate condition as `... and rand() < p` (Brian2's form for a probability
    /// that depends on the target), rewritten to `rand()*scale < p` (see [`Thinning`]).
    fn thinning(&self) -> Result<Option<Thinning>, ConnectError> {
        let Some(candidate) = &self.candidate else {
            return Ok(None);
        };
        if self.iteration != Iteration::Range || !self.candidate_condition {
            return Ok(None);
        }
        let k = candidate.kernel;
        let Some(cond_var) = candidate.var_of(Role::Cond) else {
            return Ok(None);
        };
        let cond_local = k.vars[cond_var].local;
        let stmts: Vec<&Stmt> = k.scalar.iter().chain(&k.vector).collect();
        let at = stmts
            .iter()
            .rposition(|Stmt::Assign { local, cond, .. }| *local == cond_local && cond.is_none());
        let Some(at) = at else { return Ok(None) };
        // Only statements of the condition's own: nothing may reassign what `p` reads
        // afterwards, nor assign the condition twice.
        let Stmt::Assign { value, .. } = stmts[at];
        let mut kernel = k.clone();
        let new_local = kernel.locals.len();
        let mut p = None;
        let mut ty = Type::F64;
        let mut value = value.clone();
        fn find(e: &mut Expr, new_local: usize, p: &mut Option<Expr>, ty: &mut Type) -> bool {
            match &mut e.kind {
                ExprKind::Binary(BinaryOp::And, a, b) => {
                    find(a, new_local, p, ty) || find(b, new_local, p, ty)
                }
                ExprKind::Binary(BinaryOp::Cmp(CmpOp::Lt), r, q)
                    if matches!(r.kind, ExprKind::Call(Func::Rand { .. }, _)) && !q.uses_rng() =>
                {
                    *ty = r.ty;
                    *p = Some((**q).clone());
                    let rand = (**r).clone();
                    let scale = Expr {
                        ty: r.ty,
                        kind: ExprKind::Local(new_local),
                    };
                    **r = Expr {
                        ty: r.ty,
                        kind: ExprKind::Binary(BinaryOp::Mul, Box::new(rand), Box::new(scale)),
                    };
                    true
                }
                _ => false,
            }
        }
        if !find(&mut value, new_local, &mut p, &mut ty) {
            return Ok(None);
        }
        let p = p.expect("found");
        let mut read = Vec::new();
        p.read_locals(&mut read);
        let later_writes = stmts[at + 1..]
            .iter()
            .any(|Stmt::Assign { local, .. }| read.contains(local) || *local == cond_local);
        if later_writes {
            return Ok(None);
        }
        let var = kernel.vars.len();
        kernel.locals.push(Local {
            name: "_thin_scale".into(),
            ty,
            var: Some(var),
            scalar: false,
        });
        kernel.vars.push(Variable {
            name: "_thin_scale".into(),
            ty,
            kind: VarKind::Array,
            index: Index::Elem,
            read: true,
            written: false,
            local: new_local,
        });
        let n_scalar = kernel.scalar.len();
        let target = if at < n_scalar {
            &mut kernel.scalar[at]
        } else {
            &mut kernel.vector[at - n_scalar]
        };
        let Stmt::Assign { value: v, .. } = target;
        *v = value;
        let program = Program::new(&kernel)?;
        Ok(Some(Thinning { kernel, program, p }))
    }
}

/// Thinning (Lewis and Shedler's method) for a condition `A and rand() < p`: over a range
/// of candidates where `p <= phi`, each candidate is drawn with probability `phi`
/// (geometric gaps) and then tests `A and rand()*phi < p`, so it is created with
/// probability `phi * p/phi = p`, independently, as without thinning; a distance-dependent
/// probability then costs the candidates it may create, not `N_post` per row. `kernel` is
/// the candidate kernel with `rand()` scaled by the new variable `_thin_scale`.
struct Thinning {
    kernel: Kernel,
    program: Program,
    p: Expr,
}

impl Thinning {
    fn stage<'a>(&'a self, candidate: &Stage<'a>) -> Stage<'a> {
        let mut bindings = candidate.bindings.clone();
        bindings.push(Binding::Aux(Role::Scale));
        Stage {
            program: &self.program,
            kernel: &self.kernel,
            bindings,
            types: self.kernel.vars.iter().map(|v| v.ty).collect(),
        }
    }
}

impl Pruner<'_> {
    /// Bounds of a stage's values for outer index `row` and inner values in `inner`.
    fn stage(
        &self,
        stage: &Stage,
        row: usize,
        inner: Bound,
        result: Bound,
        hulls: &[Option<RangeHull>],
        locals: &mut Vec<Bound>,
    ) {
        let g = self.generator;
        let outer_raw = row as i64 + g.outer_offset as i64;
        let shift = |b: Bound, by: i32| match b {
            Bound::Num { lo, hi } => Bound::num(lo + by as f64, hi + by as f64),
            b => b,
        };
        let mut input = |i: usize, v: &crate::ir::Variable| match stage.bindings[i] {
            Binding::Aux(Role::Outer) => Bound::num(row as f64, row as f64),
            Binding::Aux(Role::OuterRaw) => Bound::num(outer_raw as f64, outer_raw as f64),
            Binding::Aux(Role::Inner) => inner,
            Binding::Aux(Role::Result) => result,
            Binding::Aux(Role::ResultRaw) => shift(result, g.result_offset),
            Binding::Model(raw) => match v.index {
                Index::Zero => value_bound(&raw, 0),
                Index::Var(iv) => match stage.bindings[iv] {
                    Binding::Aux(Role::OuterRaw) => value_bound(&raw, outer_raw),
                    _ => match (hulls.get(i), shift(result, g.result_offset)) {
                        (Some(Some(h)), Bound::Num { lo, hi }) => h.query(lo, hi),
                        (Some(Some(h)), _) => h.query(f64::NEG_INFINITY, f64::INFINITY),
                        _ => Bound::Any,
                    },
                },
                _ => Bound::Any,
            },
            _ => Bound::Any,
        };
        bounds(stage.kernel, &mut input, locals);
    }

    /// Whether no candidate at positions `m0..m1` of the row can make a synapse, and an
    /// upper bound of a thinned condition's `p` there (1 without one, or where
    /// candidates may not be skipped).
    fn verdict(
        &self,
        row: usize,
        low: i64,
        step: i64,
        (m0, m1): (i64, i64),
        locals: &mut Vec<Bound>,
    ) -> (bool, f64) {
        let g = self.generator;
        let (a, b) = (low + m0 * step, low + (m1 - 1) * step);
        let inner = Bound::num(a.min(b) as f64, a.max(b) as f64);
        let result = match &g.element {
            Some(stage) => {
                self.stage(stage, row, inner, Bound::Any, &[], locals);
                self.result_local.map_or(Bound::Any, |l| locals[l])
            }
            None => inner,
        };
        if g.result_index_used && !g.skip_if_invalid {
            // Brian2 checks these indices before the condition: an invalid one is an
            // error even where the condition is false, so only valid ranges are skipped.
            match result {
                Bound::Num { lo, hi } if lo >= 0.0 && hi < g.result_size as f64 => {}
                _ => return (false, 1.0),
            }
        }
        self.stage(self.candidate, row, inner, result, &self.hulls, locals);
        let none = locals[self.cond_local].surely_false();
        let phi = match self.p.map(|p| eval_bound(p, locals)) {
            Some(Bound::Num { hi, .. }) => hi.clamp(0.0, 1.0),
            _ => 1.0,
        };
        (none, phi)
    }

    /// Hand the row's positions `0..total` to `take`, in order, in ranges, leaving out
    /// ranges whose condition is surely false; with a thinned condition, each range
    /// with the bound of its `p` (`take` then draws its positions with that probability).
    fn walk(
        &self,
        row: usize,
        low: i64,
        step: i64,
        total: i64,
        take: &mut dyn FnMut(i64, i64, f64) -> Result<(), ConnectError>,
    ) -> Result<(), ConnectError> {
        if total <= 2 * LEAF && self.p.is_none() {
            return take(0, total, 1.0);
        }
        let mut locals = Vec::new();
        let mut verdict = |m: (i64, i64)| self.verdict(row, low, step, m, &mut locals);
        let (none, phi) = verdict((0, total));
        if none {
            return Ok(());
        }
        if self.p.is_some() {
            // Thinning pays below this probability; above it every candidate is tested.
            const THIN_BELOW: f64 = 0.5;
            let rate = |phi: f64| if phi < THIN_BELOW { phi } else { 1.0 };
            let mut stack = vec![(0, total, phi)];
            while let Some((m0, m1, phi)) = stack.pop() {
                if m1 - m0 <= 8 * LEAF {
                    take(m0, m1, rate(phi))?;
                    continue;
                }
                let mid = m0 + (m1 - m0) / 2;
                let (ln, lphi) = verdict((m0, mid));
                let (rn, rphi) = verdict((mid, m1));
                if !ln && !rn && lphi >= 0.9 * phi && rphi >= 0.9 * phi {
                    // Halving bounds nothing better: draw the whole range at once.
                    take(m0, m1, rate(phi))?;
                    continue;
                }
                if !rn {
                    stack.push((mid, m1, rphi));
                }
                if !ln {
                    stack.push((m0, mid, lphi));
                }
            }
            return Ok(());
        }
        let piece = (total + PROBES - 1) / PROBES;
        let pieces: Vec<(i64, i64)> = (0..total)
            .step_by(piece as usize)
            .map(|m| (m, (m + piece).min(total)))
            .collect();
        let skip: Vec<bool> = pieces.iter().map(|&m| verdict(m).0).collect();
        if !skip.contains(&true) {
            return take(0, total, 1.0);
        }
        let mut stack = Vec::new();
        for (&(m0, m1), &s) in pieces.iter().zip(&skip).rev() {
            if !s {
                stack.push((m0, m1));
            }
        }
        while let Some((m0, m1)) = stack.pop() {
            if m1 - m0 <= LEAF {
                take(m0, m1, 1.0)?;
            } else if !verdict((m0, m1)).0 {
                let mid = m0 + (m1 - m0) / 2;
                stack.push((mid, m1));
                stack.push((m0, mid));
            }
        }
        Ok(())
    }
}

/// `size` distinct positions of `0..total`, ascending, uniformly among such subsets:
/// selection sampling (Knuth's algorithm S) when the subset is dense, sorted distinct
/// draws when it is sparse (the same switch point as Brian2's templates).
fn sample_fixed(total: i64, size: i64, rnd: &mut RowRandom) -> Vec<i64> {
    let mut picked = Vec::with_capacity(size as usize);
    if size == 0 {
        return picked;
    }
    if size as f64 / total as f64 > 0.06 {
        let mut left = size;
        for m in 0..total {
            if left == 0 {
                break;
            }
            // (total - m) * u < left with u uniform in [0, 1).
            let u = 1.0 - rnd.next();
            if ((total - m) as f64) * u < left as f64 {
                picked.push(m);
                left -= 1;
            }
        }
    } else {
        let mut seen = std::collections::HashSet::with_capacity(size as usize);
        while picked.len() < size as usize {
            let u = 1.0 - rnd.next();
            let m = ((u * total as f64) as i64).min(total - 1);
            if seen.insert(m) {
                picked.push(m);
            }
        }
        picked.sort_unstable();
    }
    picked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_samples_are_distinct_sorted_and_uniform() {
        for (total, size) in [(1000, 3), (1000, 500), (10, 10), (7, 0)] {
            let mut counts = vec![0u32; total as usize];
            for row in 0..2000 {
                let mut rnd = RowRandom::new(42, row);
                let s = sample_fixed(total, size, &mut rnd);
                assert_eq!(s.len(), size as usize);
                assert!(s.windows(2).all(|w| w[0] < w[1]));
                for m in s {
                    counts[m as usize] += 1;
                }
            }
            // Each position is picked with probability size/total.
            let expect = 2000.0 * size as f64 / total as f64;
            let sd = (expect * (1.0 - size as f64 / total as f64))
                .sqrt()
                .max(1e-9);
            let worst = counts
                .iter()
                .map(|&c| (c as f64 - expect).abs() / sd)
                .fold(0.0, f64::max);
            assert!(
                size == total || size == 0 || worst < 5.5,
                "{total} {size}: {worst}"
            );
        }
    }

    #[test]
    fn range_lengths_follow_python() {
        assert_eq!(range_len(0, 10, 1), 10);
        assert_eq!(range_len(0, 10, 3), 4);
        assert_eq!(range_len(10, 0, -3), 4);
        assert_eq!(range_len(5, 5, 1), 0);
        assert_eq!(range_len(5, 0, 1), 0);
    }
}

#[cfg(test)]
mod count_tests {
    use super::{copy_counting, count_indices};

    #[test]
    fn counts_match_a_serial_count_and_reject_out_of_range() {
        // Long enough for the parallel path, with runs (sorted part) and scattered values.
        let mut idx: Vec<i32> = (0..200_000).map(|k| k / 7).collect();
        idx.extend((0..100_000).map(|k| (k * 7919) % 28_000));
        let size = 28_572;
        let mut want = vec![0i32; size];
        for &k in &idx {
            want[k as usize] += 1;
        }
        assert_eq!(count_indices(&[&idx], 0, size), Ok(want.clone()));
        let shifted: Vec<i32> = idx.iter().map(|k| k + 5).collect();
        let halves: Vec<&[i32]> = shifted.chunks(1000).collect();
        assert_eq!(count_indices(&halves, 5, size), Ok(want));
        let mut bad = idx.clone();
        bad[150_000] = -1;
        assert_eq!(count_indices(&[&bad], 0, size), Err(-1));
        bad[150_000] = size as i32;
        assert_eq!(count_indices(&[&bad], 0, size), Err(size as i32));
        assert_eq!(count_indices(&[&[4, 4, 4]], 0, 4), Err(4));
        assert_eq!(count_indices(&[], 0, 3), Ok(vec![0, 0, 0]));
    }

    #[test]
    fn copy_counting_copies_with_offset_and_counts() {
        let mut idx: Vec<i32> = (0..200_000).map(|k| k / 7).collect();
        idx.extend((0..100_000).map(|k| (k * 7919) % 28_000));
        let size = 28_572;
        for len in [idx.len(), 1000, 0] {
            let src = &idx[..len];
            let mut dst = vec![0i32; len];
            let counts = copy_counting(src, &mut dst, 11, size);
            assert_eq!(counts, count_indices(&[src], 0, size));
            assert!(dst.iter().zip(src).all(|(d, s)| *d == s + 11));
        }
        let mut bad = idx.clone();
        bad[250_000] = size as i32;
        let mut dst = vec![0i32; bad.len()];
        assert_eq!(copy_counting(&bad, &mut dst, 0, size), Err(size as i32));
        bad[250_000] = -3;
        assert_eq!(
            copy_counting(&bad[..2000], &mut dst[..2000], 0, size),
            Ok(count_indices(&[&bad[..2000]], 0, size).unwrap())
        );
        assert_eq!(copy_counting(&bad, &mut dst, 0, size), Err(-3));
    }
}
