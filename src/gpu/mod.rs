//! wgpu adapter selection, device creation and compute-pipeline execution.
//!
//! The runtime's GPU backend builds on this; tests use [`GpuContext::run_compute`] to
//! run one WGSL module over a handful of raw buffers.

mod adapter;
mod kernel;
pub mod spirv;

pub use adapter::{AdapterReport, list_adapters, pick_adapter};
pub use kernel::{check_features, grid, run_kernel};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use thiserror::Error;

/// Errors from the GPU layer. Each says what to try next.
#[derive(Debug, Error)]
pub enum GpuError {
    #[error(
        "no wgpu adapter found{filter}; install a Vulkan driver (e.g. `apt-get install mesa-vulkan-drivers`) or use backend 'cpu'"
    )]
    NoAdapter { filter: String },
    #[error("could not create a wgpu device on '{adapter}': {message}")]
    RequestDevice { adapter: String, message: String },
    #[error("shader '{label}' failed to compile on the device: {message}")]
    Shader { label: String, message: String },
    #[error("GPU error in '{label}': {message}")]
    Device { label: String, message: String },
    #[error(
        "{label} needs {size} bytes but the adapter allows at most {limit} bytes per storage binding; use a smaller network or prefs.devices.wgpu.backend = 'cpu'"
    )]
    TooLarge {
        label: String,
        size: u64,
        limit: u64,
    },
    #[error(
        "the GPU ran out of memory allocating {size} bytes for {label}; use a smaller network, \
         an adapter with more memory, or prefs.devices.wgpu.backend = 'cpu'"
    )]
    OutOfMemory { label: String, size: u64 },
    #[error(
        "the GPU did not finish '{label}' within {seconds} s (prefs.devices.wgpu.gpu_timeout, \
         or {margin} times what the earlier batches of the run took per step); the device is \
         abandoned and the next run() starts a new one",
        margin = EXPECTED_WORK_MARGIN
    )]
    Timeout { label: String, seconds: f64 },
    #[error("the model needs {feature}, which adapter '{adapter}' lacks; {advice}")]
    MissingFeature {
        feature: &'static str,
        adapter: String,
        advice: &'static str,
    },
}

static SHARED_FILTER: Mutex<Option<String>> = Mutex::new(None);

/// Where every pipeline's WGSL is written, one file per kernel (`set_dump_dir`).
static DUMP_DIR: Mutex<Option<std::path::PathBuf>> = Mutex::new(None);

/// Write the WGSL of every pipeline created or reused from now on to `dir/<label>.wgsl`
/// (generated kernels are labelled with their Brian2 code object's name); `None` stops.
pub fn set_dump_dir(dir: Option<std::path::PathBuf>) {
    *DUMP_DIR.lock().unwrap() = dir;
}

fn dump(label: &str, wgsl: &str) -> Result<(), GpuError> {
    let Some(dir) = DUMP_DIR.lock().unwrap().clone() else {
        return Ok(());
    };
    let name: String = label
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{name}.wgsl"));
    std::fs::create_dir_all(&dir)
        .and_then(|_| std::fs::write(&path, wgsl))
        .map_err(|e| GpuError::Device {
            label: label.into(),
            message: format!(
                "could not write the shader dump {}: {e}; change devices.wgpu.dump_shaders",
                path.display()
            ),
        })
}

/// One wgpu device with the features this project uses where the adapter has them.
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub features: wgpu::Features,
    pub limits: wgpu::Limits,
    pipelines: Mutex<HashMap<u64, Arc<wgpu::ComputePipeline>>>,
    /// Errors no error scope caught (see `check_uncaptured`).
    uncaptured: Arc<Mutex<Vec<String>>>,
    /// Lost, or a wait timed out: [`GpuContext::shared`] makes a new device next time.
    failed: Arc<AtomicBool>,
    /// The last submission (see [`GpuContext::submit`]).
    last_submission: Mutex<Option<wgpu::SubmissionIndex>>,
    /// How long the work submitted and not yet waited for should take, in milliseconds
    /// (the engine's estimate from the batches it has timed; [`GpuContext::expect_work`]).
    expected_ms: AtomicU64,
}

/// How long one wait for the GPU may take (milliseconds; [`set_wait_timeout`]).
static WAIT_TIMEOUT_MS: AtomicU64 = AtomicU64::new(120_000);

/// A wait may last this many times the work it waits for is expected to take, when that
/// is longer than the preference: a batch that is slow because it is large is not a hang.
const EXPECTED_WORK_MARGIN: u64 = 10;

/// The deadline of every wait for the GPU (a batch of steps, a read-back).
pub fn set_wait_timeout(seconds: f64) {
    let ms = (seconds.max(0.0) * 1e3).ceil().min(u64::MAX as f64) as u64;
    WAIT_TIMEOUT_MS.store(ms.max(1), Ordering::Relaxed);
}

/// Features requested when the adapter offers them; none is required. The environment
/// variable `BRIAN2WGPU_FEATURES_OFF` (comma-separated: `f64`, `int64`, `f32_atomics`)
/// leaves some out, so that an adapter that has them can stand in for one that does not
/// (Apple GPUs have no f64) in tests.
pub fn wanted_features() -> wgpu::Features {
    let mut wanted = wgpu::Features::SHADER_F64
        | wgpu::Features::SHADER_INT64
        | wgpu::Features::SHADER_FLOAT32_ATOMIC
        | wgpu::Features::SHADER_INT64_ATOMIC_ALL_OPS
        | wgpu::Features::PASSTHROUGH_SHADERS;
    let off = std::env::var("BRIAN2WGPU_FEATURES_OFF").unwrap_or_default();
    for name in off.split(',').map(str::trim) {
        wanted &= !match name {
            "f64" => wgpu::Features::SHADER_F64,
            "int64" => wgpu::Features::SHADER_INT64 | wgpu::Features::SHADER_INT64_ATOMIC_ALL_OPS,
            "f32_atomics" => wgpu::Features::SHADER_FLOAT32_ATOMIC,
            _ => wgpu::Features::empty(),
        };
    }
    wanted
}

/// The instance every context uses. wgpu validates each indirect dispatch with a hidden
/// compute dispatch of its own (one more per indirect dispatch, every step); the kernels
/// that write our indirect arguments clamp them to the device's limits themselves
/// (`dispatch_args` in shaders/queue.wgsl), so that check is turned off.
pub(crate) fn instance_descriptor() -> wgpu::InstanceDescriptor {
    let mut d = wgpu::InstanceDescriptor::new_without_display_handle();
    d.flags
        .remove(wgpu::InstanceFlags::VALIDATION_INDIRECT_CALL);
    d
}

impl GpuContext {
    /// Create a device on the best adapter whose name contains `filter` (case-insensitive).
    pub fn new(filter: Option<&str>) -> Result<Self, GpuError> {
        let instance = wgpu::Instance::new(instance_descriptor());
        let adapter = pick_adapter(&instance, filter).ok_or_else(|| GpuError::NoAdapter {
            filter: filter
                .map(|f| format!(" matching '{f}'"))
                .unwrap_or_default(),
        })?;
        let info = adapter.get_info();
        let features = adapter.features() & wanted_features();
        // Ask for the adapter's own limits: lavapipe's are not a real GPU's.
        let limits = adapter.limits();
        let desc = wgpu::DeviceDescriptor {
            label: Some("brian2wgpu"),
            required_features: features,
            required_limits: limits.clone(),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            GpuError::RequestDevice {
                adapter: info.name.clone(),
                message: e.to_string(),
            }
        })?;
        // Errors are caught by error scopes where they can occur; anything else is kept
        // and reported by the next `wait` or read-back (never silently ignored, and never
        // aborting the host process).
        let uncaptured = Arc::new(Mutex::new(Vec::new()));
        let sink = uncaptured.clone();
        device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap().push(e.to_string());
        }));
        let failed = Arc::new(AtomicBool::new(false));
        let lost = failed.clone();
        device.set_device_lost_callback(move |_, _| lost.store(true, Ordering::Relaxed));
        Ok(Self {
            device,
            queue,
            info,
            features,
            limits,
            pipelines: Mutex::new(HashMap::new()),
            uncaptured,
            failed,
            last_submission: Mutex::new(None),
            expected_ms: AtomicU64::new(0),
        })
    }

    /// Choose the adapter of the shared context ([`pick_adapter`]'s filter: a name or an
    /// index).
    pub fn set_shared_filter(filter: Option<String>) {
        *SHARED_FILTER.lock().unwrap() = filter;
    }

    /// A process-wide context on the best adapter (or the one chosen with
    /// [`Self::set_shared_filter`]), created on first use and kept (Brian2 reinitialises
    /// devices between tests; adapters are expensive). A context whose device was lost or
    /// timed out is replaced by a new one; the old one is leaked, since freeing buffers a
    /// hung device may still use is not safe. A failure to create one is not kept: the
    /// next call tries again.
    ///
    /// The context belongs to the process that made it (a child of `fork()` makes its own:
    /// a driver's device does not survive the fork) and to the adapter choice it was made
    /// for (a new [`Self::set_shared_filter`] makes a new one).
    pub fn shared() -> Result<&'static GpuContext, GpuError> {
        type Slot = Option<(u32, Option<String>, &'static GpuContext)>;
        static CTX: Mutex<Slot> = Mutex::new(None);
        let mut slot = CTX.lock().unwrap_or_else(|e| e.into_inner());
        let pid = std::process::id();
        let filter = SHARED_FILTER.lock().unwrap().clone();
        if let Some((owner, made_for, ctx)) = &*slot
            && *owner == pid
            && *made_for == filter
            && !ctx.failed.load(Ordering::Relaxed)
        {
            return Ok(ctx);
        }
        let ctx: &'static GpuContext = Box::leak(Box::new(GpuContext::new(filter.as_deref())?));
        *slot = Some((pid, filter, ctx));
        Ok(ctx)
    }

    pub fn supports_f64(&self) -> bool {
        self.features.contains(wgpu::Features::SHADER_F64)
    }

    pub fn supports_f32_atomics(&self) -> bool {
        self.features
            .contains(wgpu::Features::SHADER_FLOAT32_ATOMIC)
    }

    pub fn supports_i64(&self) -> bool {
        self.features.contains(wgpu::Features::SHADER_INT64)
    }

    /// Compile (or fetch from the cache) a compute pipeline for `wgsl`'s `entry`.
    /// The layout is derived from the shader, so bind group 0 holds its bindings.
    /// On Vulkan the module goes to the driver as IEEE-exact SPIR-V (see [`spirv`]).
    pub fn pipeline(
        &self,
        label: &str,
        wgsl: &str,
        entry: &str,
    ) -> Result<Arc<wgpu::ComputePipeline>, GpuError> {
        use std::hash::{Hash, Hasher};
        dump(label, wgsl)?;
        let mut h = std::collections::hash_map::DefaultHasher::new();
        // The generated code names its kernel in a comment; Brian2 numbers its code objects
        // anew on every run(), so the name stays out of the key and an unchanged model
        // reuses its pipelines.
        for line in wgsl
            .lines()
            .filter(|l| !l.starts_with(crate::wgsl::KERNEL_NAME_COMMENT))
        {
            line.hash(&mut h);
        }
        entry.hash(&mut h);
        let key = h.finish();
        if let Some(p) = self.pipelines.lock().unwrap().get(&key) {
            return Ok(p.clone());
        }
        let exact = if self.exact_math() {
            let m = spirv::exact_module(wgsl, entry, (1, 3), spirv::capabilities_of(self.features))
                .map_err(|message| GpuError::Shader {
                    label: label.into(),
                    message,
                })?;
            Some(m)
        } else {
            None
        };
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipeline = if let Some(m) = exact {
            self.exact_pipeline(label, entry, m)
        } else {
            let module = self
                .device
                .create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(label),
                    source: wgpu::ShaderSource::Wgsl(wgsl.into()),
                });
            self.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(label),
                    layout: None,
                    module: &module,
                    entry_point: Some(entry),
                    compilation_options: Default::default(),
                    cache: None,
                })
        };
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Shader {
                label: label.into(),
                message: err.to_string(),
            });
        }
        let p = Arc::new(pipeline);
        self.pipelines.lock().unwrap().insert(key, p.clone());
        Ok(p)
    }

    /// Whether pipelines keep IEEE NaN/inf/signed-zero semantics (see [`spirv`]): on
    /// Vulkan with passthrough shaders, unless `BRIAN2WGPU_FAST_MATH=1` asks for the
    /// driver's default (WGSL's "no NaN or inf" licence).
    pub fn exact_math(&self) -> bool {
        self.info.backend == wgpu::Backend::Vulkan
            && self.features.contains(wgpu::Features::PASSTHROUGH_SHADERS)
            && std::env::var("BRIAN2WGPU_FAST_MATH").map_or(true, |v| v != "1")
    }

    fn exact_pipeline(
        &self,
        label: &str,
        entry: &str,
        m: spirv::ExactModule,
    ) -> wgpu::ComputePipeline {
        let (x, y, z) = (
            m.workgroup_size[0],
            m.workgroup_size[1],
            m.workgroup_size[2],
        );
        // SAFETY: the words come from naga's SPIR-V writer for a module naga validated;
        // the pass in `spirv` only adds decorations.
        let module = unsafe {
            self.device
                .create_shader_module_passthrough(wgpu::ShaderModuleDescriptorPassthrough {
                    label: Some(label),
                    entry_points: std::borrow::Cow::Owned(vec![
                        wgpu::PassthroughShaderEntryPoint {
                            name: entry.into(),
                            workgroup_size: (x, y, z),
                        },
                    ]),
                    spirv: Some(std::borrow::Cow::Owned(m.words)),
                    ..Default::default()
                })
        };
        let group = self
            .device
            .create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                label: Some(label),
                entries: &m.layout,
            });
        let layout = self
            .device
            .create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(label),
                bind_group_layouts: &[Some(&group)],
                immediate_size: 0,
            });
        self.device
            .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(label),
                layout: Some(&layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: Default::default(),
                cache: None,
            })
    }

    /// Create a storage buffer initialised with `data` (at least 4 bytes, padded to 4).
    pub fn storage_buffer(&self, label: &str, data: &[u8]) -> Result<wgpu::Buffer, GpuError> {
        self.buffer_with(label, data, wgpu::BufferUsages::empty())
    }

    /// Create a buffer inside an out-of-memory error scope: running out of GPU memory is
    /// an error that names the buffer, here, not a failure somewhere later.
    pub fn create_buffer(&self, desc: &wgpu::BufferDescriptor) -> Result<wgpu::Buffer, GpuError> {
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let buf = self.device.create_buffer(desc);
        if pollster::block_on(scope.pop()).is_some() {
            return Err(GpuError::OutOfMemory {
                label: desc.label.unwrap_or("a buffer").to_string(),
                size: desc.size,
            });
        }
        Ok(buf)
    }

    /// A small table that the generated code binds as a uniform or a storage buffer
    /// (hoisted scalars), padded to whole 16-byte rows as uniform arrays need.
    pub fn table_buffer(&self, label: &str, data: &[u8]) -> Result<wgpu::Buffer, GpuError> {
        let mut padded = data.to_vec();
        padded.resize(data.len().max(16).div_ceil(16) * 16, 0);
        self.buffer_with(label, &padded, wgpu::BufferUsages::UNIFORM)
    }

    /// A storage buffer that also holds indirect dispatch arguments.
    pub fn indirect_buffer(&self, label: &str, data: &[u8]) -> Result<wgpu::Buffer, GpuError> {
        self.buffer_with(label, data, wgpu::BufferUsages::INDIRECT)
    }

    fn buffer_with(
        &self,
        label: &str,
        data: &[u8],
        usage: wgpu::BufferUsages,
    ) -> Result<wgpu::Buffer, GpuError> {
        let size = (data.len().max(4) as u64).div_ceil(4) * 4;
        let limit = self.limits.max_storage_buffer_binding_size;
        if size > limit {
            return Err(GpuError::TooLarge {
                label: label.into(),
                size,
                limit,
            });
        }
        let buf = self.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST
                | usage,
            mapped_at_creation: true,
        })?;
        {
            let mut view = buf
                .slice(..)
                .get_mapped_range_mut()
                .map_err(|e| GpuError::Device {
                    label: label.into(),
                    message: e.to_string(),
                })?;
            view.slice(..data.len()).copy_from_slice(data);
        }
        buf.unmap();
        Ok(buf)
    }

    /// Copy the first `len` bytes of `src` back to the host (only those cross the bus).
    pub fn read_buffer(&self, src: &wgpu::Buffer, len: usize) -> Result<Vec<u8>, GpuError> {
        let size = (len.max(4) as u64).div_ceil(4) * 4;
        if size > src.size() {
            return Err(GpuError::Device {
                label: "readback".into(),
                message: format!(
                    "internal error: reading {size} bytes of a {}-byte buffer",
                    src.size()
                ),
            });
        }
        let staging = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        enc.copy_buffer_to_buffer(src, 0, &staging, 0, size);
        self.submit("readback", enc.finish())?;
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, .., move |r| {
            let _ = tx.send(r);
        });
        self.wait("readback")?;
        rx.recv()
            .map_err(|e| GpuError::Device {
                label: "readback".into(),
                message: e.to_string(),
            })?
            .map_err(|e| GpuError::Device {
                label: "readback".into(),
                message: e.to_string(),
            })?;
        let out = staging
            .get_mapped_range(..)
            .map_err(|e| GpuError::Device {
                label: "readback".into(),
                message: e.to_string(),
            })?
            .to_vec();
        staging.unmap();
        self.check_uncaptured("readback")?;
        Ok(out[..len].to_vec())
    }

    /// Submit recorded work. On a CPU adapter (lavapipe) `vkQueueSubmit` itself blocks
    /// while an earlier submission runs, where no deadline applies: wait for that one
    /// first, under the deadline (lavapipe runs one submission at a time anyway).
    pub fn submit(
        &self,
        label: &str,
        commands: wgpu::CommandBuffer,
    ) -> Result<wgpu::SubmissionIndex, GpuError> {
        if self.info.device_type == wgpu::DeviceType::Cpu {
            let prev = self.last_submission.lock().unwrap().take();
            if let Some(prev) = prev {
                self.poll_wait(label, Some(prev))?;
            }
        }
        let index = self.queue.submit([commands]);
        *self.last_submission.lock().unwrap() = Some(index.clone());
        Ok(index)
    }

    /// Block until the queue is idle, surfacing device loss as an error rather than a hang.
    pub fn wait(&self, label: &str) -> Result<(), GpuError> {
        self.poll_wait(label, None)
    }

    /// Block until submission `index` has finished (later ones may still run).
    pub fn wait_for(&self, label: &str, index: wgpu::SubmissionIndex) -> Result<(), GpuError> {
        self.poll_wait(label, Some(index))
    }

    /// The engine's estimate of the work in flight: waits allow
    /// `EXPECTED_WORK_MARGIN` times it where that exceeds `prefs.devices.wgpu.gpu_timeout`.
    pub fn expect_work(&self, seconds: f64) {
        let ms = (seconds.max(0.0) * 1e3).ceil().min(u64::MAX as f64) as u64;
        self.expected_ms.store(ms, Ordering::Relaxed);
    }

    /// The deadline of a wait now: the preference, or a margin over the work in flight.
    fn deadline_ms(&self) -> u64 {
        let scaled = self
            .expected_ms
            .load(Ordering::Relaxed)
            .saturating_mul(EXPECTED_WORK_MARGIN);
        WAIT_TIMEOUT_MS.load(Ordering::Relaxed).max(scaled)
    }

    fn poll_wait(&self, label: &str, index: Option<wgpu::SubmissionIndex>) -> Result<(), GpuError> {
        let ms = self.deadline_ms();
        let waited = self.device.poll(wgpu::PollType::Wait {
            submission_index: index,
            timeout: Some(std::time::Duration::from_millis(ms)),
        });
        if waited.is_err() {
            // Timed out or lost: this device is not used again.
            self.failed.store(true, Ordering::Relaxed);
        }
        // A failed submission makes the wait fail too; its own error says why.
        self.check_uncaptured(label)?;
        waited.map(|_| ()).map_err(|e| match e {
            wgpu::PollError::Timeout => GpuError::Timeout {
                label: label.into(),
                seconds: ms as f64 / 1e3,
            },
            e => GpuError::Device {
                label: label.into(),
                message: e.to_string(),
            },
        })
    }

    /// An error no error scope caught since the last check (a failed submission).
    pub fn check_uncaptured(&self, label: &str) -> Result<(), GpuError> {
        let errors = std::mem::take(&mut *self.uncaptured.lock().unwrap());
        match errors.first() {
            None => Ok(()),
            Some(e) => Err(GpuError::Device {
                label: label.into(),
                message: format!("internal error (the GPU work was not done): {e}"),
            }),
        }
    }

    /// Run `entry` of `wgsl` once with `workgroups` workgroups; binding `i` of group 0 is
    /// `buffers[i]` (read_write storage). The buffers are read back in place.
    pub fn run_compute(
        &self,
        label: &str,
        wgsl: &str,
        entry: &str,
        buffers: &mut [Vec<u8>],
        workgroups: u32,
    ) -> Result<(), GpuError> {
        self.run_compute_grid(label, wgsl, entry, buffers, [workgroups.max(1), 1, 1])
    }

    /// [`Self::run_compute`] over a 3-D grid of workgroups.
    pub fn run_compute_grid(
        &self,
        label: &str,
        wgsl: &str,
        entry: &str,
        buffers: &mut [Vec<u8>],
        grid: [u32; 3],
    ) -> Result<(), GpuError> {
        let pipeline = self.pipeline(label, wgsl, entry)?;
        let gpu_bufs = buffers
            .iter()
            .enumerate()
            .map(|(i, b)| self.storage_buffer(&format!("{label}[{i}]"), b))
            .collect::<Result<Vec<_>, _>>()?;
        let scope = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let layout = pipeline.get_bind_group_layout(0);
        let entries: Vec<_> = gpu_bufs
            .iter()
            .enumerate()
            .map(|(i, b)| wgpu::BindGroupEntry {
                binding: i as u32,
                resource: b.as_entire_binding(),
            })
            .collect();
        let bind = self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout: &layout,
            entries: &entries,
        });
        let mut enc = self.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            pass.set_pipeline(&pipeline);
            pass.set_bind_group(0, &bind, &[]);
            pass.dispatch_workgroups(grid[0], grid[1], grid[2]);
        }
        self.submit(label, enc.finish())?;
        if let Some(err) = pollster::block_on(scope.pop()) {
            return Err(GpuError::Device {
                label: label.into(),
                message: err.to_string(),
            });
        }
        for (host, dev) in buffers.iter_mut().zip(&gpu_bufs) {
            let len = host.len();
            *host = self.read_buffer(dev, len)?;
        }
        Ok(())
    }
}
