//! naga validation of emitted WGSL, and the check that no f64 value reaches a builtin
//! transcendental (Vulkan defines those for 16/32-bit floats only).

use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};

use super::Error;

/// The capabilities our kernels may use; the device check happens at pipeline creation.
fn capabilities() -> Capabilities {
    Capabilities::FLOAT64
        | Capabilities::SHADER_INT64
        | Capabilities::SHADER_FLOAT32_ATOMIC
        | Capabilities::SHADER_INT64_ATOMIC_ALL_OPS
}

fn excerpt(src: &str, line: Option<u32>) -> String {
    let Some(line) = line else {
        return String::new();
    };
    let line = line as usize;
    src.lines()
        .enumerate()
        .skip(line.saturating_sub(4))
        .take(7)
        .map(|(i, l)| format!("{:>5}{} {l}", i + 1, if i + 1 == line { ">" } else { "|" }))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parse and validate WGSL with naga.
pub fn validate(kernel: &str, src: &str) -> Result<(naga::Module, ModuleInfo), Error> {
    let module = naga::front::wgsl::parse_str(src).map_err(|e| Error::Invalid {
        kernel: kernel.into(),
        message: e.emit_to_string(src),
        excerpt: excerpt(src, e.location(src).map(|l| l.line_number)),
    })?;
    let info = Validator::new(ValidationFlags::all(), capabilities())
        .validate(&module)
        .map_err(|e| Error::Invalid {
            kernel: kernel.into(),
            message: e.emit_to_string(src),
            excerpt: excerpt(src, e.location(src).map(|l| l.line_number)),
        })?;
    Ok((module, info))
}

fn is_transcendental(f: naga::MathFunction) -> bool {
    use naga::MathFunction as M;
    matches!(
        f,
        M::Cos
            | M::Cosh
            | M::Sin
            | M::Sinh
            | M::Tan
            | M::Tanh
            | M::Acos
            | M::Asin
            | M::Atan
            | M::Atan2
            | M::Asinh
            | M::Acosh
            | M::Atanh
            | M::Exp
            | M::Exp2
            | M::Log
            | M::Log2
            | M::Pow
    )
}

/// Every builtin transcendental applied to an f64 value, as "function: MathFunction".
pub fn f64_transcendentals(module: &naga::Module, info: &ModuleInfo) -> Vec<String> {
    let mut found = Vec::new();
    let mut scan = |name: &str, func: &naga::Function, finfo: &naga::valid::FunctionInfo| {
        for (h, e) in func.expressions.iter() {
            if let naga::Expression::Math { fun, arg, .. } = e
                && is_transcendental(*fun)
            {
                let _ = h;
                let inner = finfo[*arg].ty.inner_with(&module.types);
                if inner.scalar_width() == Some(8)
                    && inner.scalar_kind() == Some(naga::ScalarKind::Float)
                {
                    found.push(format!("{name}: {fun:?}"));
                }
            }
        }
    };
    for (h, f) in module.functions.iter() {
        scan(f.name.as_deref().unwrap_or("?"), f, &info[h]);
    }
    for (i, ep) in module.entry_points.iter().enumerate() {
        scan(&ep.name, &ep.function, info.get_entry_point(i));
    }
    found
}
