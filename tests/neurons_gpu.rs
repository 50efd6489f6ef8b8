//! `shaders/neurons.wgsl`: ordered event compaction (count, scatter) and subgroup event
//! ranges (`b2_event_range`), checked exactly against CPU references on whatever adapter
//! is present (lavapipe in CI).

mod common;

use std::time::Instant;

use brian2wgpu::gpu::GpuContext;
use brian2wgpu::wgsl::{COMPACT_SUPER, COMPACT_TILE, compact_counters};

const NEURONS_WGSL: &str = include_str!("../shaders/neurons.wgsl");
/// Pre-filled into the eventspace; every entry the kernel must not write keeps it.
const SENTINEL: i32 = -7;
/// Pre-filled into buffers an entry point binds but must not write.
const UNTOUCHED: u32 = 0xdead_beef;

/// SplitMix64: a small deterministic generator, so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [0, n) (n > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

fn bytes_u32(v: &[u32]) -> Vec<u8> {
    bytemuck::cast_slice(v).to_vec()
}

fn bytes_i32(v: &[i32]) -> Vec<u8> {
    bytemuck::cast_slice(v).to_vec()
}

fn as_i32(b: &[u8]) -> Vec<i32> {
    bytemuck::pod_collect_to_vec(b)
}

fn as_u32(b: &[u8]) -> Vec<u32> {
    bytemuck::pod_collect_to_vec(b)
}

/// Flags with the given event density; events carry arbitrary nonzero values, since any
/// nonzero flag is an event.
fn random_flags(rng: &mut Rng, n: usize, density: f64) -> Vec<u32> {
    (0..n)
        .map(|_| {
            if rng.uniform() < density {
                (rng.next_u64() as u32).max(1)
            } else {
                0
            }
        })
        .collect()
}

/// The eventspace the compaction must produce from `flags`, starting from `before`.
fn reference_space(flags: &[u32], before: &[i32]) -> Vec<i32> {
    let n = flags.len();
    let mut out = before.to_vec();
    let mut count = 0;
    for (i, &f) in flags.iter().enumerate() {
        if f != 0 {
            out[count] = i as i32;
            count += 1;
        }
    }
    out[n] = count as i32;
    out
}

fn tiles_of(n: usize) -> usize {
    n.div_ceil(COMPACT_TILE as usize).max(1)
}

/// The two compaction steps of shaders/neurons.wgsl (count, scatter) over resident
/// buffers, bound as the engine binds them (all six bindings).
struct Compaction {
    n: usize,
    /// The clock's step of the next `run` (its parity selects the tile counters' half).
    step: std::cell::Cell<u32>,
    bufs: Vec<wgpu::Buffer>,
    steps: Vec<(wgpu::ComputePipeline, wgpu::BindGroup, [u32; 3])>,
}

impl Compaction {
    fn new(ctx: &GpuContext, flags: &[u32], space: &[i32]) -> Self {
        let n = flags.len();
        let bufs = vec![
            ctx.storage_buffer(
                "params",
                &bytes_u32(&[n as u32, 0, n as u32, 65535, 64, 0, 0, 0]),
            )
            .unwrap(),
            ctx.storage_buffer("flags", &bytes_u32(flags)).unwrap(),
            ctx.storage_buffer("space", &bytes_i32(space)).unwrap(),
            ctx.storage_buffer("range", &bytes_u32(&[UNTOUCHED; 16]))
                .unwrap(),
            ctx.storage_buffer("tiles", &vec![0u8; compact_counters(n) * 4])
                .unwrap(),
            ctx.storage_buffer("step", &bytes_u32(&[0, 0])).unwrap(),
        ];
        let grid = |groups: usize| {
            let x = groups.clamp(1, 65535);
            [x as u32, groups.div_ceil(x).max(1) as u32, 1]
        };
        let steps = [
            ("b2_compact_count", grid(n.div_ceil(64))),
            // One invocation per tile, 64 per workgroup.
            ("b2_compact_scatter", grid(tiles_of(n).div_ceil(64))),
        ]
        .into_iter()
        .map(|(entry, g)| {
            let p = ctx.pipeline(entry, NEURONS_WGSL, entry).unwrap();
            let entries: Vec<_> = bufs
                .iter()
                .enumerate()
                .map(|(i, b)| wgpu::BindGroupEntry {
                    binding: i as u32,
                    resource: b.as_entire_binding(),
                })
                .collect();
            let bind = ctx.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(entry),
                layout: &p.get_bind_group_layout(0),
                entries: &entries,
            });
            ((*p).clone(), bind, g)
        })
        .collect();
        Compaction {
            n,
            step: std::cell::Cell::new(0),
            bufs,
            steps,
        }
    }

    /// Record and run the two steps as clock step `self.step`, then advance it; seconds
    /// from submit to idle.
    fn run(&self, ctx: &GpuContext) -> f64 {
        ctx.queue
            .write_buffer(&self.bufs[5], 0, &bytes_u32(&[self.step.get(), 0]));
        let mut enc = ctx.device.create_command_encoder(&Default::default());
        {
            let mut pass = enc.begin_compute_pass(&Default::default());
            for (p, bind, g) in &self.steps {
                pass.set_pipeline(p);
                pass.set_bind_group(0, bind, &[]);
                pass.dispatch_workgroups(g[0], g[1], g[2]);
            }
        }
        let t = Instant::now();
        ctx.queue.submit([enc.finish()]);
        ctx.wait("compaction").unwrap();
        self.step.set(self.step.get() + 1);
        t.elapsed().as_secs_f64()
    }

    fn set_flags(&self, ctx: &GpuContext, flags: &[u32]) {
        ctx.queue.write_buffer(&self.bufs[1], 0, &bytes_u32(flags));
    }

    /// The eventspace; checks that the flags were cleared, the range record holds all
    /// events, and the tile and super-tile counters of the next step's half are zero.
    fn space(&self, ctx: &GpuContext, flags: &[u32]) -> Vec<i32> {
        let n = self.n;
        let read = |b: usize| ctx.read_buffer(&self.bufs[b], self.bufs[b].size() as usize);
        assert!(
            as_u32(&read(1).unwrap())[..n].iter().all(|&f| f == 0),
            "flags not cleared (N={n})"
        );
        let count = flags.iter().filter(|&&f| f != 0).count() as u32;
        let range = as_u32(&read(3).unwrap());
        let groups = count.div_ceil(64);
        let xy = |g: u32| {
            let x = g.min(65535);
            [x, if x == 0 { 1 } else { g.div_ceil(x) }, 1]
        };
        assert_eq!(range[..2], [0, count], "range record (N={n})");
        assert_eq!(range[4..7], xy(groups), "per-event sizes (N={n})");
        assert_eq!(range[8..11], xy(groups.max(1)), "non-empty sizes (N={n})");
        assert_eq!(range[12..15], xy(count), "per-event workgroups (N={n})");
        let tiles = tiles_of(n);
        let supers = tiles.div_ceil(COMPACT_SUPER as usize);
        let next = self.step.get() as usize % 2;
        let counters = as_u32(&read(4).unwrap());
        assert!(
            counters[next * tiles..(next + 1) * tiles]
                .iter()
                .chain(&counters[2 * tiles + next * supers..2 * tiles + (next + 1) * supers])
                .all(|&c| c == 0),
            "counters of the next step not reset (N={n})"
        );
        as_i32(&read(2).unwrap())[..n + 1].to_vec()
    }
}

/// Compact `flags` on the GPU into an eventspace that started as all `SENTINEL`.
fn gpu_compact(ctx: &GpuContext, flags: &[u32]) -> Vec<i32> {
    let c = Compaction::new(ctx, flags, &vec![SENTINEL; flags.len() + 1]);
    c.run(ctx);
    c.space(ctx, flags)
}

/// Compare with a readable message (no multi-million-element dumps).
fn assert_space_eq(got: &[i32], want: &[i32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    if let Some(k) = (0..got.len()).find(|&k| got[k] != want[k]) {
        let n = got.len() - 1;
        panic!(
            "{what}: first difference at position {k} (N={n}): got {}, want {}; count got {} want {}",
            got[k], want[k], got[n], want[n]
        );
    }
}

#[test]
fn compact_matches_cpu_reference() {
    let Some(ctx) = common::gpu() else { return };
    let mut rng = Rng(0x5eed_0001);
    for n in [0usize, 1, 255, 256, 257, 1000, 100_000, 3_000_000] {
        for density in [0.0, 0.001, 0.1, 0.5, 1.0] {
            let flags = random_flags(&mut rng, n, density);
            let want = reference_space(&flags, &vec![SENTINEL; n + 1]);
            let got = gpu_compact(ctx, &flags);
            assert_space_eq(&got, &want, &format!("N={n} density={density}"));
        }
    }
}

/// The largest eventspace the adapter can bind (on lavapipe 2^25 - 1 neurons, 128 MiB),
/// capped at 2^25 - 1: 131,072 tiles in 2,048 super-tiles, up to 2,111 counters summed
/// per scatter invocation. Density 1.0 is the
/// worst case for the write loop; lavapipe ends any shader invocation's loops after 65535
/// iterations in all, which the kernels must stay below.
#[test]
fn compact_tens_of_millions() {
    let Some(ctx) = common::gpu() else { return };
    let limit = ctx.limits.max_storage_buffer_binding_size;
    let n = (limit / 4 - 1).min((1 << 25) - 1) as usize;
    let mut rng = Rng(0x5eed_0006);
    for density in [0.01, 1.0] {
        let flags = random_flags(&mut rng, n, density);
        let want = reference_space(&flags, &vec![SENTINEL; n + 1]);
        let got = gpu_compact(ctx, &flags);
        assert_space_eq(&got, &want, &format!("N={n} density={density}"));
    }
    eprintln!("compaction: N={n} matches");
}

/// Uneven distributions: all events in one tile, in the last tile's tail, at tile and
/// super-tile boundaries, and a lone event at either end.
#[test]
fn compact_structured_patterns() {
    let Some(ctx) = common::gpu() else { return };
    for n in [
        1usize,
        2,
        15,
        16,
        17,
        255,
        256,
        257,
        1023,
        1024,
        1025,
        2047,
        1024 * 13 + 5,
        16_383,
        16_384,
        16_385,
        65_537,
        16_384 * 5 + 300,
    ] {
        #[allow(clippy::type_complexity)]
        let patterns: Vec<(&str, Box<dyn Fn(usize) -> bool>)> = vec![
            ("first only", Box::new(|i| i == 0)),
            ("last only", Box::new(move |i| i == n - 1)),
            ("first tile", Box::new(|i| i < 256)),
            ("first super-tile", Box::new(|i| i < 16_384)),
            ("last half", Box::new(move |i| i >= n / 2)),
            ("tile edges", Box::new(|i| i % 256 == 0 || i % 256 == 255)),
            (
                "super-tile edges",
                Box::new(|i| i % 16_384 == 0 || i % 16_384 == 16_383),
            ),
            ("every other tile", Box::new(|i| (i / 256) % 2 == 1)),
            ("alternating", Box::new(|i| i % 2 == 1)),
        ];
        for (name, event) in patterns {
            let flags: Vec<u32> = (0..n).map(|i| event(i) as u32).collect();
            let want = reference_space(&flags, &vec![SENTINEL; n + 1]);
            let got = gpu_compact(ctx, &flags);
            assert_space_eq(&got, &want, &format!("N={n} {name}"));
        }
    }
}

/// Further steps over the same eventspace: the new events overwrite the front, the stale
/// entries behind the new count stay, the count is replaced; the counter halves
/// alternate (each step's scatter clears the half the next step counts into).
#[test]
fn compact_over_previous_steps() {
    let Some(ctx) = common::gpu() else { return };
    let mut rng = Rng(0x5eed_0002);
    let n = 10_000;
    let mut flags = random_flags(&mut rng, n, 0.5);
    let mut want = reference_space(&flags, &vec![SENTINEL; n + 1]);
    let c = Compaction::new(ctx, &flags, &vec![SENTINEL; n + 1]);
    for step in 0..5 {
        c.run(ctx);
        assert_space_eq(&c.space(ctx, &flags), &want, &format!("step {step}"));
        flags = random_flags(&mut rng, n, [0.05, 0.9, 0.0, 0.3][step as usize % 4]);
        want = reference_space(&flags, &want);
        c.set_flags(ctx, &flags);
    }
}

/// CPU reference: positions of the first event >= start and the first >= stop.
fn reference_range(events: &[i32], start: u32, stop: u32) -> [u32; 2] {
    let lo = events.partition_point(|&e| (e as i64) < start as i64) as u32;
    let hi = events.partition_point(|&e| (e as i64) < stop as i64) as u32;
    [lo, hi.max(lo)]
}

/// Run `b2_event_range` (all six bindings; the flags are a small dummy, as in the
/// engine) and return [lo, hi); check the indirect dispatch sizes it writes for the
/// per-event kernels (64 per workgroup, at most 5 workgroups in x here), also those with
/// at least one workgroup.
fn gpu_range(ctx: &GpuContext, space: &[i32], start: u32, stop: u32) -> [u32; 2] {
    let n = space.len() - 1;
    let mut bufs = vec![
        bytes_u32(&[n as u32, start, stop, 5, 64, 0, 0, 0]),
        bytes_u32(&[UNTOUCHED, UNTOUCHED]),
        bytes_i32(space),
        bytes_u32(&[UNTOUCHED; 16]),
        bytes_u32(&[UNTOUCHED, UNTOUCHED]),
        bytes_u32(&[UNTOUCHED, UNTOUCHED]),
    ];
    ctx.run_compute(
        "b2_event_range",
        NEURONS_WGSL,
        "b2_event_range",
        &mut bufs,
        1,
    )
    .unwrap();
    assert_eq!(as_u32(&bufs[1]), [UNTOUCHED, UNTOUCHED], "flags written");
    assert_eq!(as_i32(&bufs[2]), space, "eventspace written");
    assert_eq!(as_u32(&bufs[4]), [UNTOUCHED, UNTOUCHED], "tiles written");
    let r = as_u32(&bufs[3]);
    let groups = (r[1] - r[0]).div_ceil(64);
    let (x, y) = if groups == 0 {
        (0, 1)
    } else {
        (groups.min(5), groups.div_ceil(groups.min(5)))
    };
    assert_eq!(
        r[4..7],
        [x, y, 1],
        "dispatch sizes for {} events",
        r[1] - r[0]
    );
    assert!(x * y * 64 >= r[1] - r[0] && x <= 5);
    let (x1, y1) = (
        groups.clamp(1, 5),
        groups.max(1).div_ceil(groups.clamp(1, 5)),
    );
    assert_eq!(r[8..11], [x1, y1, 1], "non-empty dispatch sizes");
    let events = r[1] - r[0];
    let xe = events.min(5);
    let ye = if xe == 0 { 1 } else { events.div_ceil(xe) };
    assert_eq!(r[12..15], [xe, ye, 1], "one workgroup per event");
    [r[0], r[1]]
}

/// A random eventspace: sorted distinct indices below N, the count at [N], junk behind
/// the count (as a real eventspace has after a busier step).
fn random_space(rng: &mut Rng, n: usize) -> Vec<i32> {
    let density = [0.0, 0.01, 0.3, 1.0][rng.below(4) as usize];
    let mut space = vec![0i32; n + 1];
    let mut count = 0;
    for i in 0..n {
        if rng.uniform() < density {
            space[count] = i as i32;
            count += 1;
        }
    }
    for s in &mut space[count..n] {
        *s = rng.below(n as u64 + 5) as i32 - 2;
    }
    space[n] = count as i32;
    space
}

#[test]
fn event_range_matches_binary_search() {
    let Some(ctx) = common::gpu() else { return };
    let mut rng = Rng(0x5eed_0003);
    let mut cases = 0;
    for n in [0usize, 1, 2, 7, 100, 1000, 4097] {
        for _ in 0..12 {
            let space = random_space(&mut rng, n);
            let count = space[n] as usize;
            let events = &space[..count];
            let pick = |rng: &mut Rng| -> u32 {
                // Mostly inside [0, N], sometimes exactly on an event, sometimes beyond N.
                match rng.below(4) {
                    0 if count > 0 => events[rng.below(count as u64) as usize] as u32,
                    1 => n as u32 + rng.below(3) as u32,
                    _ => rng.below(n as u64 + 1) as u32,
                }
            };
            let mut pairs = vec![(0, n as u32), (0, 0), (n as u32, n as u32)];
            for _ in 0..4 {
                let a = pick(&mut rng);
                let b = pick(&mut rng);
                pairs.push((a.min(b), a.max(b)));
            }
            // An inverted range must come out empty.
            let (a, b) = (pick(&mut rng), pick(&mut rng));
            pairs.push((a.max(b), a.min(b)));
            for (start, stop) in pairs {
                let want = reference_range(events, start, stop);
                let got = gpu_range(ctx, &space, start, stop);
                assert_eq!(got, want, "N={n} count={count} start={start} stop={stop}");
                cases += 1;
            }
        }
    }
    eprintln!("b2_event_range: {cases} cases match");
}

/// An eventspace whose count is garbage (never written yet) must not send the search out
/// of bounds: the count is clamped to [0, N].
#[test]
fn event_range_clamps_count() {
    let Some(ctx) = common::gpu() else { return };
    let n = 16;
    let ascending: Vec<i32> = (0..n as i32).collect();
    for (stored, count) in [(-1, 0), (i32::MIN, 0), (n as i32 + 100, n), (i32::MAX, n)] {
        let mut space = ascending.clone();
        space.push(stored);
        let want = reference_range(&ascending[..count], 3, 9);
        assert_eq!(gpu_range(ctx, &space, 3, 9), want, "stored count {stored}");
    }
}

/// Compaction followed by the range search on the GPU's own output, for a few subgroups.
#[test]
fn compact_then_subgroup_ranges() {
    let Some(ctx) = common::gpu() else { return };
    let mut rng = Rng(0x5eed_0004);
    let n = 50_000;
    let flags = random_flags(&mut rng, n, 0.02);
    let space = gpu_compact(ctx, &flags);
    let count = space[n] as usize;
    for (start, stop) in [(0, n), (0, 1), (100, 2_000), (25_000, 25_001), (49_000, n)] {
        let [lo, hi] = gpu_range(ctx, &space, start as u32, stop as u32);
        let want: Vec<i32> = (start..stop)
            .filter(|&i| flags[i] != 0)
            .map(|i| i as i32)
            .collect();
        assert!(hi as usize <= count);
        assert_eq!(
            &space[lo as usize..hi as usize],
            &want[..],
            "[{start}, {stop})"
        );
    }
}

/// Informative: the time of one compaction of 3,000,000 flags at density 0.1, with the
/// buffers resident (the flags' upload is in the timed part, no readback is).
#[test]
fn compact_timing_3m() {
    let Some(ctx) = common::gpu() else { return };
    let n = 3_000_000;
    let mut rng = Rng(0x5eed_0005);
    let flags = random_flags(&mut rng, n, 0.1);
    let want = reference_space(&flags, &vec![SENTINEL; n + 1]);

    let c = Compaction::new(ctx, &flags, &vec![SENTINEL; n + 1]);
    // The scatter clears the flags it reads: each run starts from a fresh copy (its
    // upload, 12 MB, is part of the submission timed).
    let once = || {
        c.set_flags(ctx, &flags);
        c.run(ctx)
    };
    once(); // warm-up
    let mut times: Vec<f64> = (0..5).map(|_| once()).collect();
    times.sort_by(f64::total_cmp);
    assert_space_eq(&c.space(ctx, &flags), &want, "timing run");
    eprintln!(
        "compaction (count, scatter) on '{}' ({:?}): N={n}, density 0.1, {} events: min {:.2} ms, median {:.2} ms (5 runs, submit to idle, with the flags' upload)",
        ctx.info.name,
        ctx.info.device_type,
        want[n],
        times[0] * 1e3,
        times[2] * 1e3
    );
}
