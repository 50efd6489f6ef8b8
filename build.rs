//! Records the version of wgpu this build links (from Cargo.lock), which
//! `python -m brian2wgpu` reports.

fn main() {
    println!("cargo:rerun-if-changed=Cargo.lock");
    let lock = std::fs::read_to_string("Cargo.lock").unwrap_or_default();
    let version = lock
        .split("[[package]]")
        .find_map(|entry| {
            let field = |key: &str| {
                entry
                    .lines()
                    .find_map(|l| l.strip_prefix(key))
                    .map(|v| v.trim().trim_matches('"').to_string())
            };
            (field("name = ").as_deref() == Some("wgpu"))
                .then(|| field("version = "))
                .flatten()
        })
        .unwrap_or_else(|| "unknown".into());
    println!("cargo:rustc-env=BRIAN2WGPU_WGPU_VERSION={version}");
}
