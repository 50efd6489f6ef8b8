//! IEEE-exact compute pipelines on Vulkan: WGSL → naga → SPIR-V with every float operation
//! marked `NoContraction`, handed to the driver as is (wgpu's passthrough shaders).
//!
//! WGSL lets an implementation assume that no NaN or infinity occurs, and Mesa's NIR
//! does: it folds `x - x` to 0, `0 * x` to 0 and `sqrt(x) * sqrt(x)` to x, so that a
//! model whose values overflow or go NaN gives different numbers on the GPU than under
//! numpy. A `NoContraction` result is "exact" to NIR and keeps IEEE semantics. naga's
//! SPIR-V writer has no option for it, hence the pass here (which also declares the
//! `SignedZeroInfNanPreserve` float controls, without which NIR still folds `a * 0.0`); the bind group
//! layout wgpu would derive from the shader is rebuilt from naga's reflection.

use naga::back::spv;
use spirv_words::*;

/// A module ready for `create_shader_module_passthrough`, with its bind group 0 layout.
pub struct ExactModule {
    pub words: Vec<u32>,
    pub layout: Vec<wgpu::BindGroupLayoutEntry>,
    pub workgroup_size: [u32; 3],
}

/// What naga may let a shader use on a device with `features`: passthrough SPIR-V skips
/// wgpu's own validation, so this check is the one that stops a shader needing more than
/// the adapter has before it reaches the driver.
pub fn capabilities_of(features: wgpu::Features) -> naga::valid::Capabilities {
    use naga::valid::Capabilities as C;
    use wgpu::Features as F;
    [
        (F::SHADER_F64, C::FLOAT64),
        (F::SHADER_INT64, C::SHADER_INT64),
        (F::SHADER_FLOAT32_ATOMIC, C::SHADER_FLOAT32_ATOMIC),
        (
            F::SHADER_INT64_ATOMIC_ALL_OPS,
            C::SHADER_INT64_ATOMIC_ALL_OPS,
        ),
        (
            F::SHADER_INT64_ATOMIC_MIN_MAX,
            C::SHADER_INT64_ATOMIC_MIN_MAX,
        ),
    ]
    .into_iter()
    .filter(|(f, _)| features.contains(*f))
    .fold(C::empty(), |acc, (_, c)| acc | c)
}

/// Compile `wgsl`'s compute entry point `entry` into IEEE-exact SPIR-V, validated against
/// `capabilities` (the device's, from [`capabilities_of`]).
pub fn exact_module(
    wgsl: &str,
    entry: &str,
    lang_version: (u8, u8),
    capabilities: naga::valid::Capabilities,
) -> Result<ExactModule, String> {
    let module = naga::front::wgsl::parse_str(wgsl).map_err(|e| e.emit_to_string(wgsl))?;
    let info = naga::valid::Validator::new(naga::valid::ValidationFlags::all(), capabilities)
        .validate(&module)
        .map_err(|e| e.emit_to_string(wgsl))?;
    let (ep_index, ep) = module
        .entry_points
        .iter()
        .enumerate()
        .find(|(_, e)| e.name == entry && e.stage == naga::ShaderStage::Compute)
        .ok_or_else(|| format!("no compute entry point '{entry}'"))?;
    let ep_info = info.get_entry_point(ep_index);
    let mut layout = Vec::new();
    for (handle, var) in module.global_variables.iter() {
        let Some(binding) = &var.binding else {
            continue;
        };
        if ep_info[handle].is_empty() {
            continue; // unused by the entry point, as in wgpu's derived layout
        }
        if binding.group != 0 {
            return Err(format!(
                "binding in group {} (only group 0 is laid out)",
                binding.group
            ));
        }
        let ty = match var.space {
            naga::AddressSpace::Storage { access } => wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Storage {
                    read_only: !access.contains(naga::StorageAccess::STORE),
                },
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            naga::AddressSpace::Uniform => wgpu::BindingType::Buffer {
                ty: wgpu::BufferBindingType::Uniform,
                has_dynamic_offset: false,
                min_binding_size: None,
            },
            other => return Err(format!("unsupported binding space {other:?}")),
        };
        layout.push(wgpu::BindGroupLayoutEntry {
            binding: binding.binding,
            visibility: wgpu::ShaderStages::COMPUTE,
            ty,
            count: None,
        });
    }
    layout.sort_by_key(|e| e.binding);
    // wgpu's Vulkan backend numbers a bind group layout's descriptors 0, 1, 2, ... in
    // binding order (it remaps naga's own output the same way): a module whose entry point
    // uses bindings 0, 2, 5 must say 0, 1, 2. Bindings the entry point does not use go
    // past the end, where they cannot alias a used one.
    let mut binding_map = spv::BindingMap::default();
    let mut unused = layout.len() as u32;
    for (handle, var) in module.global_variables.iter() {
        let Some(binding) = &var.binding else {
            continue;
        };
        let compact = match layout.iter().position(|e| e.binding == binding.binding) {
            Some(i) if !ep_info[handle].is_empty() => i as u32,
            _ => {
                unused += 1;
                unused
            }
        };
        binding_map.insert(
            *binding,
            spv::BindingInfo {
                descriptor_set: 0,
                binding: compact,
                binding_array_size: None,
            },
        );
    }
    let options = spv::Options {
        binding_map,
        lang_version,
        flags: spv::WriterFlags::empty(),
        fake_missing_bindings: true,
        // As wgpu does on Vulkan without robustBufferAccess2: indices are clamped.
        bounds_check_policies: naga::proc::BoundsCheckPolicies {
            index: naga::proc::BoundsCheckPolicy::Restrict,
            buffer: naga::proc::BoundsCheckPolicy::Restrict,
            image_load: naga::proc::BoundsCheckPolicy::Restrict,
            binding_array: naga::proc::BoundsCheckPolicy::Unchecked,
        },
        ..Default::default()
    };
    let pipeline = spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: entry.into(),
    };
    let words =
        spv::write_vec(&module, &info, &options, Some(&pipeline)).map_err(|e| e.to_string())?;
    Ok(ExactModule {
        words: mark_float_ops_exact(&words)?,
        layout,
        workgroup_size: ep.workgroup_size,
    })
}

/// SPIR-V opcodes and enumerants used below.
mod spirv_words {
    pub const OP_EXT_INST: u32 = 12;
    pub const OP_TYPE_BOOL: u32 = 20;
    pub const OP_TYPE_FLOAT: u32 = 22;
    pub const OP_TYPE_VECTOR: u32 = 23;
    pub const OP_FUNCTION: u32 = 54;
    pub const OP_DECORATE: u32 = 71;
    pub const OP_MEMBER_DECORATE: u32 = 72;
    pub const OP_DECORATION_GROUP: u32 = 73;
    pub const OP_GROUP_DECORATE: u32 = 74;
    pub const OP_GROUP_MEMBER_DECORATE: u32 = 75;
    pub const OP_DECORATE_ID: u32 = 332;
    pub const OP_DECORATE_STRING: u32 = 5632;
    pub const OP_MEMBER_DECORATE_STRING: u32 = 5633;
    pub const DECORATION_NO_CONTRACTION: u32 = 42;
    pub const OP_EXTENSION: u32 = 10;
    pub const OP_ENTRY_POINT: u32 = 15;
    pub const OP_EXECUTION_MODE: u32 = 16;
    pub const OP_CAPABILITY: u32 = 17;
    pub const CAPABILITY_SIGNED_ZERO_INF_NAN_PRESERVE: u32 = 4466;
    pub const EXECUTION_MODE_SIGNED_ZERO_INF_NAN_PRESERVE: u32 = 4461;
    /// OpFNegate, OpFAdd, OpFSub, OpFMul, OpFDiv, OpFRem, OpFMod, OpVectorTimesScalar,
    /// OpDot and the float comparisons (OpFOrdEqual ... OpFUnordGreaterThanEqual),
    /// OpIsNan, OpIsInf, OpSelect.
    pub fn is_float_op(op: u32) -> bool {
        matches!(
            op,
            127 | 129 | 131 | 133 | 136 | 140 | 141 | 142 | 148 | 156 | 157 | 169
        ) || (180..=191).contains(&op)
    }
}

/// A literal string as SPIR-V words (UTF-8, NUL-terminated, zero-padded).
fn string_words(s: &str) -> Vec<u32> {
    let mut bytes = s.as_bytes().to_vec();
    bytes.push(0);
    bytes.resize(bytes.len().div_ceil(4) * 4, 0);
    bytes
        .chunks(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Declare float controls that preserve signed zeros, infinities and NaNs, and add
/// `OpDecorate %r NoContraction` for the result of every float operation (and
/// float-returning extended instruction) in the module's functions.
fn mark_float_ops_exact(words: &[u32]) -> Result<Vec<u32>, String> {
    if words.len() < 5 {
        return Err("SPIR-V module too short".into());
    }
    let header = &words[..5];
    // (offset, opcode, length) of every instruction.
    let mut instrs = Vec::new();
    let mut at = 5;
    while at < words.len() {
        let len = (words[at] >> 16) as usize;
        if len == 0 || at + len > words.len() {
            return Err(format!("malformed SPIR-V instruction at word {at}"));
        }
        instrs.push((at, words[at] & 0xffff, len));
        at += len;
    }
    let mut float_types = std::collections::HashSet::new();
    let mut bool_types = std::collections::HashSet::new();
    let mut exact = Vec::new();
    let mut in_functions = false;
    for &(at, op, len) in &instrs {
        let w = &words[at..at + len];
        match op {
            OP_TYPE_FLOAT => {
                float_types.insert(w[1]);
            }
            OP_TYPE_BOOL => {
                bool_types.insert(w[1]);
            }
            OP_TYPE_VECTOR if float_types.contains(&w[2]) => {
                float_types.insert(w[1]);
            }
            OP_TYPE_VECTOR if bool_types.contains(&w[2]) => {
                bool_types.insert(w[1]);
            }
            OP_FUNCTION => in_functions = true,
            _ => {}
        }
        if !in_functions || len < 3 {
            continue;
        }
        let (result_type, result) = (w[1], w[2]);
        let float_result = float_types.contains(&result_type);
        let wanted = (is_float_op(op) && (float_result || bool_types.contains(&result_type)))
            || (op == OP_EXT_INST && float_result);
        if wanted {
            exact.push(result);
        }
    }
    // Decorations go after the last existing annotation (or, without any, before the
    // first type declaration).
    let is_annotation = |op: u32| {
        matches!(
            op,
            OP_DECORATE
                | OP_MEMBER_DECORATE
                | OP_DECORATION_GROUP
                | OP_GROUP_DECORATE
                | OP_GROUP_MEMBER_DECORATE
                | OP_DECORATE_ID
                | OP_DECORATE_STRING
                | OP_MEMBER_DECORATE_STRING
        )
    };
    let insert_at = match instrs.iter().rev().find(|(_, op, _)| is_annotation(*op)) {
        Some(&(at, _, len)) => at + len,
        None => instrs
            .iter()
            .find(|(_, op, _)| (19..=39).contains(op)) // OpType*
            .map(|&(at, _, _)| at)
            .ok_or("SPIR-V module without types")?,
    };
    // Float controls: NIR folds `a * 0.0` to 0 even for exact multiplies unless the
    // shader asks to preserve signed zeros, infinities and NaNs for that width.
    let widths: Vec<u32> = instrs
        .iter()
        .filter(|(_, op, _)| *op == OP_TYPE_FLOAT)
        .map(|&(at, _, _)| words[at + 2])
        .filter(|w| *w == 32 || *w == 64)
        .collect();
    let last_of = |ops: &[u32]| {
        instrs
            .iter()
            .rev()
            .find(|(_, op, _)| ops.contains(op))
            .map(|&(at, _, len)| at + len)
    };
    let after_caps = last_of(&[OP_CAPABILITY]).ok_or("SPIR-V module without capabilities")?;
    let after_modes =
        last_of(&[OP_EXECUTION_MODE, OP_ENTRY_POINT]).ok_or("SPIR-V module without entry point")?;
    let entry = instrs
        .iter()
        .find(|(_, op, _)| *op == OP_ENTRY_POINT)
        .map(|&(at, _, _)| words[at + 2])
        .ok_or("SPIR-V module without entry point")?;
    let mut ext = vec![0u32];
    ext.extend(string_words("SPV_KHR_float_controls"));
    ext[0] = ((ext.len() as u32) << 16) | OP_EXTENSION;

    let mut out = Vec::with_capacity(words.len() + 3 * exact.len() + 16);
    out.extend_from_slice(header);
    out.extend_from_slice(&words[5..after_caps]);
    out.extend_from_slice(&[
        (2 << 16) | OP_CAPABILITY,
        CAPABILITY_SIGNED_ZERO_INF_NAN_PRESERVE,
    ]);
    out.extend_from_slice(&ext);
    out.extend_from_slice(&words[after_caps..after_modes]);
    for w in widths {
        out.extend_from_slice(&[
            (4 << 16) | OP_EXECUTION_MODE,
            entry,
            EXECUTION_MODE_SIGNED_ZERO_INF_NAN_PRESERVE,
            w,
        ]);
    }
    out.extend_from_slice(&words[after_modes..insert_at]);
    for id in exact {
        out.extend_from_slice(&[(3 << 16) | OP_DECORATE, id, DECORATION_NO_CONTRACTION]);
    }
    out.extend_from_slice(&words[insert_at..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "
@group(0) @binding(0) var<storage, read_write> a: array<f32>;
@group(0) @binding(1) var<storage, read> b: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    let x = b[gid.x];
    a[gid.x] = select(0.0 * sqrt(x) + (x - x), x, x > 1.0);
}
";

    #[test]
    fn capabilities_follow_the_device() {
        // An f64 shader on a device without SHADER_F64 is refused before the driver sees it.
        const F64: &str = "
@group(0) @binding(0) var<storage, read_write> a: array<f64>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
    a[gid.x] = a[gid.x] * 2.0lf;
}
";
        let without = capabilities_of(wgpu::Features::SHADER_INT64);
        let err = exact_module(F64, "main", (1, 3), without)
            .err()
            .expect("refused");
        assert!(err.contains("64"), "{err}");
        let with = capabilities_of(wgpu::Features::SHADER_F64);
        assert!(exact_module(F64, "main", (1, 3), with).is_ok());
    }

    /// Result ids of the instructions with `op`, and the ids decorated NoContraction.
    fn scan(words: &[u32], op: u32) -> (Vec<u32>, Vec<u32>) {
        let (mut results, mut exact) = (Vec::new(), Vec::new());
        let mut at = 5;
        while at < words.len() {
            let len = (words[at] >> 16) as usize;
            let w = &words[at..at + len];
            if w[0] & 0xffff == op {
                results.push(w[2]);
            }
            if w[0] & 0xffff == OP_DECORATE && w[2] == DECORATION_NO_CONTRACTION {
                exact.push(w[1]);
            }
            at += len;
        }
        (results, exact)
    }

    #[test]
    fn float_operations_are_decorated_exact() {
        let m = exact_module(SRC, "main", (1, 3), naga::valid::Capabilities::empty()).unwrap();
        for op in [
            129, /* FAdd */
            131, /* FSub */
            133, /* FMul */
            169, /* Select */
        ] {
            let (results, exact) = scan(&m.words, op);
            assert!(!results.is_empty(), "opcode {op} not emitted");
            assert!(
                results.iter().all(|r| exact.contains(r)),
                "opcode {op}: {results:?} vs {exact:?}"
            );
        }
        assert_eq!(m.workgroup_size, [64, 1, 1]);
        let read_only: Vec<bool> = m
            .layout
            .iter()
            .map(|e| matches!(e.ty, wgpu::BindingType::Buffer { ty: wgpu::BufferBindingType::Storage { read_only }, .. } if read_only))
            .collect();
        assert_eq!(read_only, [false, true]);
        let (modes, _) = scan(&m.words, OP_EXECUTION_MODE);
        assert!(!modes.is_empty());
        let preserved = m.words.windows(4).any(|w| {
            w[0] == (4 << 16) | OP_EXECUTION_MODE
                && w[2] == EXECUTION_MODE_SIGNED_ZERO_INF_NAN_PRESERVE
                && w[3] == 32
        });
        assert!(preserved);
    }

    /// wgpu numbers an entry point's descriptors 0, 1, 2, ... in binding order: a module
    /// whose entry point uses bindings 0 and 5 of several must be decorated 0 and 1.
    #[test]
    fn sparse_bindings_are_numbered_as_wgpu_lays_them_out() {
        const SPARSE: &str = "
@group(0) @binding(0) var<storage, read> a: array<u32>;
@group(0) @binding(2) var<storage, read_write> unused: array<u32>;
@group(0) @binding(5) var<storage, read_write> b: array<u32>;
@compute @workgroup_size(1)
fn main() { b[0] = a[0]; }
@compute @workgroup_size(1)
fn other() { unused[0] = 1u; }
";
        let m = exact_module(SPARSE, "main", (1, 3), naga::valid::Capabilities::empty()).unwrap();
        let bindings: Vec<u32> = m.layout.iter().map(|e| e.binding).collect();
        assert_eq!(bindings, [0, 5], "the layout keeps WGSL's numbers");
        const DECORATION_BINDING: u32 = 33;
        let mut decorated: Vec<u32> = m
            .words
            .windows(4)
            .filter(|w| w[0] == (4 << 16) | OP_DECORATE && w[2] == DECORATION_BINDING)
            .map(|w| w[3])
            .collect();
        decorated.sort();
        assert!(decorated.starts_with(&[0, 1]), "{decorated:?}");
        assert!(
            !decorated.contains(&5) && !decorated.contains(&2),
            "{decorated:?}"
        );
    }
}
