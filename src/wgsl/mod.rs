//! The WGSL backend: kernel IR → WGSL source, validated by naga.
//!
//! Binding 0 of group 0 holds the invocation parameters (element count, timestep, seed,
//! kernel id); each array the kernel touches follows as its own storage binding.

pub mod check;
pub mod polyfill;
mod soft_programs;
mod writer;

use thiserror::Error;

use crate::ir::{Kernel, Type};

#[derive(Debug, Error)]
pub enum Error {
    #[error(
        "kernel '{kernel}' calls '{function}', which has no 'wgpu' implementation; add one with Function.implementations.add_implementation('wgpu', code=WGSL_SOURCE)"
    )]
    MissingImplementation { kernel: String, function: String },
    #[error("{0} is not supported in WGSL kernels")]
    Unsupported(String),
    /// What the float64 emulation (no [`Options::f64`]) does not compute.
    #[error(
        "kernel '{kernel}' computes {what} in float64, and this adapter has no float64 \
         (SHADER_F64): brian2wgpu emulates float64 arithmetic, comparisons, conversions, **, \
         sqrt and the elementary functions but arcsin, arccos and arctan there, not {what}; \
         run this model with prefs.devices.wgpu.backend = 'cpu', or on an adapter with \
         SHADER_F64"
    )]
    NeedsF64 { kernel: String, what: String },
    #[error(
        "internal error: WGSL for kernel '{kernel}' failed naga validation:\n{message}\n{excerpt}"
    )]
    Invalid {
        kernel: String,
        message: String,
        excerpt: String,
    },
}

#[derive(Debug, Clone)]
pub struct Options {
    pub workgroup_size: u32,
    /// Iterate over `b2_list[b2_range[0]..b2_range[1]]` (events, recorded indices)
    /// instead of `0..n`.
    pub list: bool,
    /// Read the timestep for random streams from a `b2_step` binding (two u32 words: the
    /// clock's int64 timestep array) instead of the parameters, so that one parameter
    /// block serves every step of a batch.
    pub step_binding: bool,
    /// The device has f64 (SHADER_F64): float32 transcendentals then use the f64
    /// library for accuracy. Without it, float64 values are their bits (`vec2<u32>`, the
    /// layout of an f64 in memory) computed by `shaders/soft_f64.wgsl`, exactly as IEEE
    /// float64 (exp, log, exprel, ** within a few ulp); the other functions of float64
    /// values are [`Error::NeedsF64`].
    pub f64: bool,
    /// Variables written by several elements through pure accumulation
    /// ([`crate::ir::Parallel::Atomic`]): added atomically, never loaded or stored.
    pub atomic: Vec<usize>,
    /// The threshold kernel's event flag (a boolean variable): each element where it holds
    /// adds 1 to its tile's counter in a `b2_tiles` binding, the first step of the event
    /// compaction in shaders/neurons.wgsl.
    pub count_tiles: Option<usize>,
    /// The device has native f32 `atomicAdd` (SHADER_FLOAT32_ATOMIC); without it f32
    /// accumulations are compare-and-swap loops.
    pub float_atomics: bool,
    /// With `list`: one workgroup per due bundle (a source's synapses, or those of one
    /// source and delay), its invocations striding over the bundle's synapses
    /// `b2_perm[first..end)` from the `b2_bundles` table (see
    /// `runtime::gpu::queue::Bundles`). The clock's step (`b2_step`, always bound here)
    /// selects what is due.
    pub bundles: Option<Bundling>,
    /// With `bundles`: one invocation per bundle, walking its synapses in a loop (for
    /// small bundles), instead of one workgroup striding over them.
    pub bundle_per_invocation: bool,
    /// With `list`: one invocation walks `b2_list[lo + b2_params[1] ..][.. b2_params[2]]`
    /// in order (the serial loop's semantics), dispatched as one workgroup of one.
    pub serial: bool,
    /// With `list`: one invocation per distinct target of the due synapses, walking that
    /// target's due synapses in list order (the serial loop's semantics where only a
    /// target's own synapses conflict, [`crate::ir::serial_index`]). The targets, their
    /// counts and their due positions come from a `b2_tgt` binding that the support
    /// kernels of shaders/synapses.wgsl fill; `b2_params[6]` holds the number of possible
    /// targets.
    pub by_target: bool,
    /// Per variable, the variable whose binding it uses: variables on one array (`A_pre`
    /// and `A_post` of one group) must share a binding, as a dispatch may not bind a
    /// buffer twice when one binding writes. Empty: each its own.
    pub alias: Vec<usize>,
    /// Element mode: the number of elements, written into the code as a constant instead
    /// of read from the parameters (`b2_params[0]`, which must then hold the same).
    pub elements: Option<u32>,
    /// Element mode: the kernel computes a GSL state updater's derivatives, and `main` is
    /// the driver that integrates each element from t to t + dt with them.
    pub gsl: Option<GslShape>,
}

/// A GSL state updater on the GPU (see `runtime::gsl`): one invocation per element runs
/// the driver; the derivative kernel reads the stage's state and time from private memory
/// and writes the derivatives there. Bindings after the kernel's (`WgslKernel::gsl_binding`):
/// a status block (5 u32: failure code, element, step low and high words, failures
/// seen), then where asked for: the step sizes (f64 per element), failed attempts and
/// steps (i32 per element).
#[derive(Debug, Clone, PartialEq)]
pub struct GslShape {
    /// Kernel variables of the integrated variables, in the driver's order (bound to
    /// their arrays: the driver loads and stores them).
    pub states: Vec<usize>,
    /// Kernel variables receiving the derivatives, in the same order.
    pub derivs: Vec<usize>,
    /// The kernel variable of the stage's time.
    pub time: usize,
    /// Whose Runge-Kutta table the stages follow (`crate::odeiv2`).
    pub stepper: crate::odeiv2::Stepper,
    /// The absolute error allowed per integrated variable.
    pub scale: Vec<f64>,
    pub dt: f64,
    pub adaptive: bool,
    pub max_steps: u64,
    /// Each element starts from its last step size (else from dt).
    pub last_timestep: bool,
    /// Failed attempts and steps taken are stored per element (Brian2's
    /// `save_failed_steps`, `save_step_count`).
    pub failed_steps: bool,
    pub step_count: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            workgroup_size: 64,
            list: false,
            step_binding: false,
            f64: true,
            atomic: Vec::new(),
            float_atomics: false,
            count_tiles: None,
            serial: false,
            by_target: false,
            bundles: None,
            bundle_per_invocation: false,
            alias: Vec::new(),
            elements: None,
            gsl: None,
        }
    }
}

/// How a pathway kernel in bundle mode finds its due bundles ([`Options::bundles`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bundling {
    /// One delay for all synapses: workgroup x takes event x of the range record the
    /// step selects (`b2_range`, records of 16 words in `b2_list`'s ring or eventspace);
    /// `b2_bundles` = [source offset, records, delay, record stride, width, first synapse
    /// per source (width + 1)].
    Sources,
    /// Synapses grouped by (source, delay): workgroup row y takes the y-th distinct delay
    /// d (descending), and its x-th column the events pushed d steps ago into the ring
    /// `b2_list` (striding by the grid's width); `b2_bundles` = [D, width, distinct delays,
    /// then the offsets of the tables src_group, group_delay, group_start, delays, and the
    /// tables] (see `runtime::gpu::queue`).
    SourceDelays,
}

/// Which kernel variable sits at which binding.
#[derive(Debug, Clone, PartialEq)]
pub struct Binding {
    pub var: usize,
    pub binding: u32,
    pub read_only: bool,
}

#[derive(Debug, Clone)]
pub struct WgslKernel {
    pub source: String,
    pub entry: String,
    pub bindings: Vec<Binding>,
    pub workgroup_size: u32,
    /// Bindings of `b2_list` (then `b2_range` right after) in list mode.
    pub list_binding: Option<u32>,
    /// Bindings of `b2_bundles` (then `b2_perm` right after) in bundle mode.
    pub bundle_binding: Option<u32>,
    /// Binding of `b2_posbase` (the record length) when the kernel writes records.
    pub pos_binding: Option<u32>,
    /// Binding of `b2_step` (see [`Options::step_binding`]).
    pub step_binding: Option<u32>,
    /// Binding of `b2_tiles` (see [`Options::count_tiles`]).
    pub tiles_binding: Option<u32>,
    /// Binding of `b2_tgt` (see [`Options::by_target`]).
    pub targets_binding: Option<u32>,
    /// First of the four driver bindings of [`Options::gsl`].
    pub gsl_binding: Option<u32>,
}

/// Flags per tile of the event compaction (`B2_SPK_TILE` in shaders/neurons.wgsl).
pub const COMPACT_TILE: u32 = 256;
/// Tiles per super-tile of the event compaction (`B2_SPK_SUPER`).
pub const COMPACT_SUPER: u32 = 64;

/// Counter words of an event compaction over `n` flags: two halves of one per tile, then
/// two halves of one per super-tile (shaders/neurons.wgsl).
pub fn compact_counters(n: usize) -> usize {
    let tiles = n.div_ceil(COMPACT_TILE as usize).max(1);
    2 * tiles + 2 * tiles.div_ceil(COMPACT_SUPER as usize)
}

/// How the comment naming a generated kernel starts. Pipeline caches leave that line out
/// of their key: Brian2 renames its code objects on every run().
pub const KERNEL_NAME_COMMENT: &str = "// kernel '";

/// Number of u32 words before the per-variable offsets in a parameter block:
/// n, step_lo, step_hi, seed_lo, seed_hi, kernel_id, and two spare words.
pub const PARAM_HEADER: u32 = 8;

/// Arena storage types in binding order (bindings 1..=5) for batched modules.
pub const ARENA_TYPES: [Type; 5] = [Type::F64, Type::F32, Type::I32, Type::Bool, Type::I64];

pub use writer::write_batch;

/// Write a kernel as WGSL (not yet validated: see [`validate`]).
pub fn write_kernel(kernel: &Kernel, opts: &Options) -> Result<WgslKernel, Error> {
    writer::write(kernel, opts)
}

/// Write and validate with naga; a failure is a bug of ours and reports the offending lines.
pub fn compile(kernel: &Kernel, opts: &Options) -> Result<WgslKernel, Error> {
    let k = write_kernel(kernel, opts)?;
    check::validate(&kernel.name, &k.source)?;
    Ok(k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{KernelSpec, Type, Value, VariableSpec, lower};

    fn threshold_kernel(name: &str) -> Kernel {
        let mut t = VariableSpec::array("t", Type::F64);
        t.index = "0".into();
        let mut lastspike = VariableSpec::array("lastspike", Type::F64);
        lastspike.conditional_write = Some("_cond".into());
        let mut nr = VariableSpec::array("not_refractory", Type::Bool);
        nr.conditional_write = Some("_cond".into());
        let mut spec = KernelSpec::vector(
            "threshold",
            vec![
                VariableSpec::array("v", Type::F64),
                t,
                nr,
                lastspike,
                VariableSpec::array("_cond", Type::Bool),
            ],
            "_cond = (v > 1) and not_refractory\nnot_refractory = False\nlastspike = t",
        );
        spec.name = name.into();
        lower(&spec).unwrap()
    }

    /// Writes guarded by conditions store only where one happened; a variable that is
    /// never read is not loaded at all.
    #[test]
    fn guarded_writes_become_masked_stores() {
        let k = compile(&threshold_kernel("k"), &Options::default()).unwrap();
        let src = &k.source;
        assert!(!src.contains("= a3_lastspike[b2_i];"), "{src}");
        assert!(src.contains("if (b2_wrote3) { a3_lastspike[b2_i]"), "{src}");
        assert!(
            src.contains("if (b2_wrote2) { a2_not_refractory[b2_i]"),
            "{src}"
        );
        // not_refractory is read, so it is loaded.
        assert!(src.contains("= (a2_not_refractory[b2_i] != 0u);"), "{src}");
    }

    /// A pathway kernel in each way of walking bundles validates, binds the bundle table
    /// and the step, and walks the synapses as asked (a workgroup striding, or one
    /// invocation looping).
    #[test]
    fn bundle_modes_validate() {
        let post = VariableSpec {
            index: "_postsynaptic_idx".into(),
            ..VariableSpec::array("v_post", Type::F64)
        };
        let vars = vec![
            VariableSpec::array("_postsynaptic_idx", Type::I32),
            VariableSpec::array("w", Type::F64),
            post,
        ];
        let k = crate::ir::lower(&KernelSpec::vector("synapses", vars, "v_post += w")).unwrap();
        for bundling in [Bundling::Sources, Bundling::SourceDelays] {
            for per_invocation in [false, true] {
                let opts = Options {
                    list: true,
                    step_binding: true,
                    atomic: vec![2],
                    bundles: Some(bundling),
                    bundle_per_invocation: per_invocation,
                    ..Default::default()
                };
                let c = compile(&k, &opts).unwrap();
                assert!(c.bundle_binding.is_some() && c.step_binding.is_some());
                let strided = c
                    .source
                    .contains("b2_s = b2_first + lid; b2_s < b2_end; b2_s += 64u");
                let looped = c.source.contains("b2_s = b2_first; b2_s < b2_end; b2_s++");
                assert_eq!(
                    (strided, looped),
                    (!per_invocation, per_invocation),
                    "{}",
                    c.source
                );
            }
        }
    }

    /// Without SHADER_F64, float64 values are their bits and every operation on them a
    /// call into shaders/soft_f64.wgsl: the module names no f64 and validates without
    /// the FLOAT64 capability; what the emulation lacks is a NeedsF64 error naming it
    /// (exp, log, sqrt, sin, ... are emulated, arctan is not).
    #[test]
    fn float64_is_emulated_without_shader_f64() {
        use naga::valid::{Capabilities, ValidationFlags, Validator};
        let mut k = threshold_kernel("threshold");
        k.float = Type::F32;
        let opts = Options {
            f64: false,
            ..Default::default()
        };
        // No f64 type anywhere outside comments, and valid without FLOAT64.
        let check = |src: &str| {
            let names_f64 = src.lines().any(|l| {
                l.split("//")
                    .next()
                    .unwrap()
                    .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
                    .any(|w| w == "f64")
            });
            assert!(!names_f64 && src.contains("b2s_"), "{src}");
            let module = naga::front::wgsl::parse_str(src).unwrap();
            Validator::new(
                ValidationFlags::all(),
                Capabilities::all() - Capabilities::FLOAT64,
            )
            .validate(&module)
            .unwrap_or_else(|e| panic!("{}", e.emit_to_string(src)));
        };
        check(&compile(&k, &opts).unwrap().source);
        let vars = vec![VariableSpec::array("x", Type::F64)];
        let functions = |code: &str| {
            let mut k = lower(&KernelSpec::vector("stateupdate", vars.clone(), code)).unwrap();
            k.float = Type::F32;
            compile(&k, &opts)
        };
        let src = functions(
            "x = exp(x) + log(x) + exprel(x) + sqrt(x) + x**2.5 + x**3 + sin(x) + cos(x)",
        )
        .unwrap()
        .source;
        assert!(src.contains("b2s_run"));
        check(&src);
        match functions("x = tan(x) + arctan(x)") {
            Err(Error::NeedsF64 { what, .. }) => assert_eq!(what, "arctan()"),
            other => panic!("{other:?}"),
        }
    }

    /// Integer powers up to the interpreter's limit are products in both backends.
    #[test]
    fn small_integer_powers_are_products() {
        assert_eq!(writer::POWI_MAX, crate::cpu::math::POWI_MAX);
        let vars = vec![VariableSpec::array("x", Type::F64)];
        let k =
            crate::ir::lower(&KernelSpec::vector("stateupdate", vars, "x = x**3 + x**9")).unwrap();
        let src = compile(&k, &Options::default()).unwrap().source;
        assert!(src.contains("b2_powi_f64(l0_x, 3i)"), "{src}");
        assert!(src.contains("b2_pow_f64(l0_x, (9e0lf))"), "{src}");
    }

    /// The threshold kernel counts its events per tile for the compaction.
    #[test]
    fn threshold_counts_events_per_tile() {
        let kernel = threshold_kernel("k");
        let flag = kernel.vars.iter().position(|v| v.name == "_cond").unwrap();
        let opts = Options {
            count_tiles: Some(flag),
            step_binding: true,
            ..Default::default()
        };
        let k = compile(&kernel, &opts).unwrap();
        let tb = k.tiles_binding.expect("a tiles binding");
        assert!(k.source.contains(&format!(
            "@binding({tb}) var<storage, read_write> b2_tiles: array<atomic<u32>>;"
        )));
        // Into the half of the counters that this step's parity selects.
        assert!(k.step_binding.is_some(), "the parity comes from b2_step");
        let t = COMPACT_TILE;
        assert!(
            k.source
                .contains(&format!("let b2_nt = (b2_params[0] + {}u) / {t}u;", t - 1))
        );
        assert!(k.source.contains(&format!(
            "atomicAdd(&b2_tiles[b2_par * b2_nt + b2_i / {t}u], 1u);"
        )));
        assert!(k.source.contains(&format!(
            "atomicAdd(&b2_tiles[2u * b2_nt + b2_par * b2_ns + b2_i / {}u], 1u);",
            t * COMPACT_SUPER
        )));
    }

    /// With the element count given, the code compares with a constant: no parameter load
    /// per invocation, in the bounds check or in the event counting.
    #[test]
    fn element_count_is_a_constant_when_given() {
        let kernel = threshold_kernel("k");
        let flag = kernel.vars.iter().position(|v| v.name == "_cond").unwrap();
        let opts = Options {
            count_tiles: Some(flag),
            step_binding: true,
            elements: Some(4000),
            ..Default::default()
        };
        let src = compile(&kernel, &opts).unwrap().source;
        assert!(src.contains("if (b2_i >= 4000u) { return; }"), "{src}");
        assert!(src.contains("let b2_nt = (4000u + 255u) / 256u;"), "{src}");
        assert!(!src.contains("b2_params[0]"), "{src}");
        let src = compile(&kernel, &Options::default()).unwrap().source;
        assert!(
            src.contains("if (b2_i >= b2_params[0]) { return; }"),
            "{src}"
        );
    }

    /// A GSL derivative kernel becomes a naga-valid module whose main runs the driver:
    /// the integrated variable is bound (the driver stores it), the stage's time and the
    /// derivative are not (private memory), and every stage calls the kernel.
    #[test]
    fn gsl_driver_validates() {
        let spec = KernelSpec::vector(
            "stateupdate",
            vec![
                VariableSpec::array("v", Type::F64),
                VariableSpec::array("tau", Type::F64),
                VariableSpec::array("_gsl_t", Type::F64),
                VariableSpec::array("_gsl_k_v", Type::F64),
            ],
            "_gsl_k_v = (sin(_gsl_t) - v) / tau",
        );
        let kernel = lower(&spec).unwrap();
        let var = |n: &str| kernel.vars.iter().position(|v| v.name == n).unwrap();
        let shape = GslShape {
            states: vec![var("v")],
            derivs: vec![var("_gsl_k_v")],
            time: var("_gsl_t"),
            stepper: crate::odeiv2::Stepper::Rkf45,
            scale: vec![1e-6],
            dt: 1e-4,
            adaptive: true,
            max_steps: 100,
            last_timestep: true,
            failed_steps: false,
            step_count: true,
        };
        let opts = Options {
            step_binding: true,
            elements: Some(10),
            gsl: Some(shape),
            ..Default::default()
        };
        let k = compile(&kernel, &opts).unwrap();
        let src = &k.source;
        assert!(src.contains("b2_gsl_drive(b2_i);"), "{src}");
        assert_eq!(
            src.matches("b2_kernel(b2_i, b2_i, 0u);").count(),
            6,
            "{src}"
        );
        assert!(
            !src.lines()
                .any(|l| l.contains("var<storage")
                    && (l.contains("_gsl_t:") || l.contains("_gsl_k_v:"))),
            "{src}"
        );
        assert!(k.bindings.iter().any(|b| b.var == var("v") && !b.read_only));
        assert!(k.gsl_binding.is_some() && k.step_binding.is_some());
        // Only what was asked for is bound and stored.
        assert!(
            src.contains("b2_gsl_count[b2_i] =") && !src.contains("b2_gsl_failed"),
            "{src}"
        );
    }

    /// Two kernels that differ only in their Brian2 name differ only in the comment line
    /// the pipeline cache leaves out of its key.
    #[test]
    fn kernel_names_stay_out_of_the_code() {
        let a = compile(
            &threshold_kernel("neurongroup_spike_thresholder_codeobject"),
            &Options::default(),
        )
        .unwrap();
        let b = compile(
            &threshold_kernel("neurongroup_spike_thresholder_codeobject_7"),
            &Options::default(),
        )
        .unwrap();
        assert_ne!(a.source, b.source);
        let code = |s: &str| -> Vec<String> {
            s.lines()
                .filter(|l| !l.starts_with(KERNEL_NAME_COMMENT))
                .map(String::from)
                .collect()
        };
        assert_eq!(code(&a.source), code(&b.source));
    }

    /// Host-computed scalars of one type share one table binding.
    #[test]
    fn hoisted_scalars_share_a_table_per_type() {
        let mut dt = VariableSpec::array("dt", Type::F64);
        dt.index = "0".into();
        let mut tau = VariableSpec::array("tau", Type::F64);
        tau.constant = Some(Value::F64(0.01));
        let mut spec = KernelSpec::vector(
            "stateupdate",
            vec![VariableSpec::array("v", Type::F64), dt, tau],
            "v = v*_lio_1 + _lio_2",
        );
        spec.scalar_code = "_lio_1 := exp(-dt/tau)\n_lio_2 := 1 - _lio_1".into();
        let kernel = lower(&spec).unwrap();
        let h = crate::ir::hoist_scalars(&kernel, |_| crate::ir::Invariance::Run).unwrap();
        let k = compile(&h.kernel, &Options::default()).unwrap();
        // A uniform table (two f64 per 16-byte row), read at constant positions.
        assert_eq!(
            k.source
                .matches("var<uniform> b2_hoisted_f64: array<vec2<f64>, 1>")
                .count(),
            1
        );
        assert!(
            k.source.contains("b2_hoisted_f64[0u][0u]")
                && k.source.contains("b2_hoisted_f64[0u][1u]")
        );
        assert!(
            !k.source.contains("b2_exp_f64"),
            "no exp per element: {}",
            k.source
        );
    }
}
