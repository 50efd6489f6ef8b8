//! Which adapters wgpu sees and which one `auto` takes (discrete > integrated > virtual > software).

use std::fmt;

/// What `python -m brian2wgpu` prints about one adapter.
#[derive(Debug, Clone)]
pub struct AdapterReport {
    pub name: String,
    pub backend: String,
    pub device_type: String,
    pub driver: String,
    pub f64: bool,
    pub i64: bool,
    pub f32_atomics: bool,
    pub max_storage_buffer_binding_size: u64,
    pub max_buffer_size: u64,
    pub max_storage_buffers_per_shader_stage: u32,
    pub max_compute_workgroup_size_x: u32,
    pub max_compute_invocations_per_workgroup: u32,
    pub max_compute_workgroups_per_dimension: u32,
}

impl fmt::Display for AdapterReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let yn = |b: bool| if b { "yes" } else { "no" };
        writeln!(
            f,
            "{} [{} / {}] driver: {}",
            self.name, self.backend, self.device_type, self.driver
        )?;
        writeln!(
            f,
            "  f64: {}  int64: {}  f32 atomics: {}",
            yn(self.f64),
            yn(self.i64),
            yn(self.f32_atomics)
        )?;
        write!(
            f,
            "  max storage binding: {} MiB, max buffer: {} MiB, storage buffers/stage: {}, \
             workgroup x: {}, invocations/workgroup: {}, workgroups/dim: {}",
            self.max_storage_buffer_binding_size >> 20,
            self.max_buffer_size >> 20,
            self.max_storage_buffers_per_shader_stage,
            self.max_compute_workgroup_size_x,
            self.max_compute_invocations_per_workgroup,
            self.max_compute_workgroups_per_dimension
        )
    }
}

fn report(adapter: &wgpu::Adapter) -> AdapterReport {
    let info = adapter.get_info();
    let features = adapter.features();
    let limits = adapter.limits();
    AdapterReport {
        name: info.name.clone(),
        backend: format!("{:?}", info.backend),
        device_type: format!("{:?}", info.device_type),
        driver: format!("{} {}", info.driver, info.driver_info)
            .trim()
            .to_string(),
        f64: features.contains(wgpu::Features::SHADER_F64),
        i64: features.contains(wgpu::Features::SHADER_INT64),
        f32_atomics: features.contains(wgpu::Features::SHADER_FLOAT32_ATOMIC),
        max_storage_buffer_binding_size: limits.max_storage_buffer_binding_size,
        max_buffer_size: limits.max_buffer_size,
        max_storage_buffers_per_shader_stage: limits.max_storage_buffers_per_shader_stage,
        max_compute_workgroup_size_x: limits.max_compute_workgroup_size_x,
        max_compute_invocations_per_workgroup: limits.max_compute_invocations_per_workgroup,
        max_compute_workgroups_per_dimension: limits.max_compute_workgroups_per_dimension,
    }
}

fn rank(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Other => 3,
        wgpu::DeviceType::Cpu => 4,
    }
}

fn adapters(instance: &wgpu::Instance) -> Vec<wgpu::Adapter> {
    let mut all = pollster::block_on(instance.enumerate_adapters(wgpu::Backends::all()));
    // GL adapters lack the storage features this project relies on.
    all.retain(|a| a.get_info().backend != wgpu::Backend::Gl);
    all.sort_by_key(|a| rank(a.get_info().device_type));
    all
}

/// The adapter to use: with no filter the best device type; a filter of digits is an index
/// into [`list_adapters`]'s order (machines with several identical GPUs: one worker per
/// index); any other filter picks the first adapter whose name contains it
/// (case-insensitive).
pub fn pick_adapter(instance: &wgpu::Instance, filter: Option<&str>) -> Option<wgpu::Adapter> {
    let all = adapters(instance);
    let Some(filter) = filter.map(str::trim) else {
        return all.into_iter().next();
    };
    if let Ok(index) = filter.parse::<usize>() {
        return all.into_iter().nth(index);
    }
    let filter = filter.to_lowercase();
    all.into_iter()
        .find(|a| a.get_info().name.to_lowercase().contains(filter.as_str()))
}

/// Every adapter wgpu sees, in `auto`'s order of preference.
pub fn list_adapters() -> Vec<AdapterReport> {
    let instance = wgpu::Instance::new(super::instance_descriptor());
    adapters(&instance).iter().map(report).collect()
}
