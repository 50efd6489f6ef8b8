//! Monitors on the GPU: `spikemonitor` (bit rows, or records and counts), `statemonitor`
//! and `ratemonitor` (`shaders/monitors.wgsl`, `shaders/monitors_f64.wgsl`), and draining
//! their records to the host.

use super::*;

pub(super) const MONITORS_WGSL: &str = include_str!("../../../shaders/monitors.wgsl");
pub(super) const MONITORS_F64_WGSL: &str = include_str!("../../../shaders/monitors_f64.wgsl");

/// A SpikeMonitor that records only `i` and `t`, as bit rows (`record_event_bits` in
/// shaders/monitors.wgsl): memory follows the recorded steps, not the worst-case spike count.
pub(super) struct EventBits {
    pub(super) bits: wgpu::Buffer,
    pub(super) params: wgpu::Buffer,
    /// First neuron of the monitored range, and u32 words per row (one bit per neuron).
    pub(super) start: usize,
    pub(super) words: usize,
    pub(super) rows_cap: usize,
    /// t of each row recorded since the last drain (the kernel gets row 0's timestep when
    /// the first row is recorded).
    pub(super) row_t: Vec<f64>,
    /// The source's `i` values (indexed by neuron), and the records they go to.
    pub(super) i_values: usize,
    pub(super) i_record: usize,
    pub(super) t_record: usize,
}

/// Host memory for a monitor's bit rows: a few MB whatever the group's size (at least
/// one row, at most 4,096).
const EVENT_BITS_BUDGET: usize = 4 << 20;

/// First capacity of a monitor record: a batch's worst case where that is smaller, else
/// this many bytes (at least one step's worst case). The host plans batches by the worst
/// case (it cannot see the counts without waiting), and a record that could overflow is
/// drained first, so a sparse monitor on a large group drains often instead of holding
/// many steps of a worst case that never comes. Memory follows the data: where a drain
/// finds a record at least half full, it doubles ([`GpuRun::grow_records`]), up to
/// [`RECORD_MOST`] or the adapter's binding limit.
const RECORD_START: usize = 4 << 20;
const RECORD_MOST: usize = 256 << 20;

/// A monitor's GPU-side records and counter.
pub(super) struct MonitorRecords {
    /// Bit rows instead of `records` (see [`EventBits`]).
    pub(super) bits: Option<EventBits>,
    pub(super) counter: wgpu::Buffer,
    pub(super) records: Vec<(usize, wgpu::Buffer, usize)>, // (record id, buffer, capacity in elements)
    /// Elements each record may gain in one step (per record).
    pub(super) worst: Vec<usize>,
    /// Upper bound of the current lengths (host-side, no sync needed).
    pub(super) bound: Vec<usize>,
    /// Which counter word gives each record's length: 0 (values) or 1 (rows).
    pub(super) len_word: Vec<usize>,
    /// On adapters without f64, the time (and rate) records the host writes.
    pub(super) host_time: Option<HostTime>,
}

/// A StateMonitor's or PopulationRateMonitor's float64 records on an adapter without
/// SHADER_F64: the host keeps each row's `t` (the planned step's, the value the clock's `t`
/// holds then), and the GPU stores the rate monitor's event count in the rate record's
/// 8-byte slot, which the host turns into Brian2's `(count / dt) / n_source`.
pub(super) struct HostTime {
    /// Positions in `MonitorRecords::records` of the time record and the rate record.
    pub(super) t_pos: usize,
    pub(super) rate: Option<(usize, f64, f64)>,
    /// `t` of each row since the last drain.
    pub(super) row_t: Vec<f64>,
}

/// Values as a record of type `ty` stores them (f64 or f32).
fn float_bytes(values: &[f64], ty: Type) -> Vec<u8> {
    if ty == Type::F32 {
        values
            .iter()
            .flat_map(|&v| (v as f32).to_le_bytes())
            .collect()
    } else {
        values.iter().flat_map(|&v| v.to_le_bytes()).collect()
    }
}

/// A SpikeMonitor kernel that records exactly `i` and `t` (`_to_record_i = _source_i`,
/// `_to_record_t = _source_t`, t being the clock's `t` array): the array of `i` values,
/// and the `i` and `t` records. Such a monitor records bit rows ([`EventBits`]).
fn plain_spike_records(
    eng: &Engine,
    kernel: usize,
    t_array: Option<usize>,
) -> Option<(usize, usize, usize)> {
    use crate::ir::{ExprKind, Index, Stmt};
    let ek = &eng.kernels[kernel];
    let k = &ek.kernel;
    if !k.scalar.is_empty() || k.vector.len() != 2 {
        return None;
    }
    let var = |name: &str| k.vars.iter().position(|v| v.name == name);
    let (src_i, src_t) = (var("_source_i")?, var("_source_t")?);
    let (rec_i, rec_t) = (var("_to_record_i")?, var("_to_record_t")?);
    let copies = |rec: usize, src: usize| {
        k.vector.iter().any(|Stmt::Assign { local, value, cond }| {
            *local == k.vars[rec].local
                && cond.is_none()
                && value.kind == ExprKind::Local(k.vars[src].local)
        })
    };
    let recorded = ek
        .bindings
        .iter()
        .filter(|b| matches!(b, Binding::Record(_)))
        .count();
    let (Binding::Array(i_values), Binding::Array(t_values)) =
        (ek.bindings[src_i], ek.bindings[src_t])
    else {
        return None;
    };
    let (Binding::Record(i_record), Binding::Record(t_record)) =
        (ek.bindings[rec_i], ek.bindings[rec_t])
    else {
        return None;
    };
    let ok = recorded == 2
        && copies(rec_i, src_i)
        && copies(rec_t, src_t)
        && k.vars[src_i].index == Index::Elem
        && k.vars[src_i].ty == Type::I32
        && eng.records[i_record].ty == Type::I32
        && matches!(eng.records[t_record].ty, Type::F64 | Type::F32)
        && t_array == Some(t_values);
    ok.then_some((i_values, i_record, t_record))
}

impl GpuRun {
    /// `spikemonitor`: bit rows where it records only `i` and `t`, else records and counts.
    pub(super) fn spike_monitor(
        &mut self,
        cx: &mut Prep,
        op: &Op,
    ) -> Result<Prepared, EngineError> {
        let Op::SpikeMonitor {
            kernel,
            eventspace,
            source_n,
            start,
            stop,
            count,
            total,
            records,
        } = op
        else {
            unreachable!("spike_monitor of another operation")
        };
        Ok({
            let ts = cx.clocks.clocks[cx.clock].timestep_array;
            let clock_step = ts.map(|a| &self.bufs[a]);
            let step_buf = Some(&self.rng_steps[cx.clock]);
            let width = stop - start;
            let (range, rp) = self.event_range(cx, *eventspace, *source_n, *start, *stop)?;
            let t_array = cx.clocks.clocks[cx.clock].t_array;
            if let (Some((i_values, i_record, t_record)), Some(ts)) = (
                plain_spike_records(cx.eng, *kernel, t_array),
                clock_step.filter(|_| width > 0),
            ) {
                // Bit rows: a few MB whatever the group's size.
                let words = width.div_ceil(32);
                let limit = self.ctx.limits.max_storage_buffer_binding_size as usize;
                let rows_cap = (EVENT_BITS_BUDGET.min(limit) / (words * 4)).clamp(1, 4096);
                if rows_cap * words * 4 > limit {
                    return Err(EngineError::Gpu(GpuError::TooLarge {
                        label: format!("SpikeMonitor bits of {width} neurons (one step)"),
                        size: (words * 4) as u64,
                        limit: limit as u64,
                    }));
                }
                let bits = storage(self.ctx, "spike bits", &vec![0u8; rows_cap * words * 4])?;
                let params = storage(
                    self.ctx,
                    "spike bits params",
                    bytemuck::cast_slice(&[*start as u32, words as u32, 0, 0]),
                )?;
                let mut c = self.support(
                    "record_event_bits",
                    MONITORS_WGSL,
                    "record_event_bits",
                    &[
                        (0, &params),
                        (1, &self.bufs[*eventspace]),
                        (2, &range),
                        (3, &self.bufs[*count]),
                        (5, &self.bufs[*total]),
                        (6, ts),
                        (7, &bits),
                    ],
                    grid(self.ctx, width, EVENT_WG),
                )?;
                c.indirect = Some((range.clone(), RANGE_INDIRECT));
                let mut mon = self.records_for(cx.eng, &[], &[], &[], cx.steps)?;
                mon.bits = Some(EventBits {
                    bits,
                    params,
                    start: *start,
                    words,
                    rows_cap,
                    row_t: Vec::new(),
                    i_values,
                    i_record,
                    t_record,
                });
                self.monitors.push(mon);
                return Ok(Prepared::Passes(
                    rp.into_iter().chain([c]).collect(),
                    Some(self.monitors.len() - 1),
                ));
            }
            let mon = self.records_for(
                cx.eng,
                records,
                &vec![width; records.len()],
                &vec![0; records.len()],
                cx.steps,
            )?;
            let mut k = self.kernel_pass(
                cx.eng,
                &mon.records,
                *kernel,
                width,
                Mode::List(&self.bufs[*eventspace], &range, &[]),
                Some(&mon.counter),
                step_buf,
            )?;
            k.indirect = Some((range.clone(), RANGE_INDIRECT));
            let sp = storage(self.ctx, "start", bytemuck::cast_slice(&[*start as u32, 0]))?;
            let mut c = self.support(
                "count_events",
                MONITORS_WGSL,
                "count_events",
                &[
                    (0, &sp),
                    (1, &self.bufs[*eventspace]),
                    (2, &range),
                    (3, &self.bufs[*count]),
                    (4, &mon.counter),
                    (5, &self.bufs[*total]),
                ],
                grid(self.ctx, width.max(1), EVENT_WG),
            )?;
            c.indirect = Some((range.clone(), RANGE_INDIRECT));
            c.params = Some(sp);
            self.monitors.push(mon);
            Prepared::Passes(
                rp.into_iter().chain([k, c]).collect(),
                Some(self.monitors.len() - 1),
            )
        })
    }

    /// `statemonitor`: one invocation per recorded index, then the time.
    pub(super) fn state_monitor(
        &mut self,
        cx: &mut Prep,
        op: &Op,
    ) -> Result<Prepared, EngineError> {
        let Op::StateMonitor {
            kernel,
            indices,
            n_indices,
            t,
            t_record,
            records,
            total,
        } = op
        else {
            unreachable!("state_monitor of another operation")
        };
        Ok({
            let step_buf = Some(&self.rng_steps[cx.clock]);
            let mut ids = records.clone();
            ids.push(*t_record);
            let mut worst = vec![*n_indices; records.len()];
            worst.push(1);
            let mut len_word = vec![0; records.len()];
            len_word.push(1);
            let mut mon = self.records_for(cx.eng, &ids, &worst, &len_word, cx.steps)?;
            let range = storage(
                self.ctx,
                "range",
                bytemuck::cast_slice(&[0u32, *n_indices as u32]),
            )?;
            let mut passes = Vec::new();
            if *n_indices > 0 {
                passes.push(self.kernel_pass(
                    cx.eng,
                    &mon.records,
                    *kernel,
                    *n_indices,
                    Mode::List(&self.bufs[*indices], &range, &[]),
                    Some(&mon.counter),
                    step_buf,
                )?);
            }
            let np = storage(
                self.ctx,
                "row",
                bytemuck::cast_slice(&[*n_indices as u32, 0]),
            )?;
            if self.ctx.supports_f64() {
                let trec = &mon.records.last().unwrap().1;
                passes.push(self.support(
                    "record_t",
                    MONITORS_F64_WGSL,
                    "record_t",
                    &[
                        (0, &np),
                        (2, &self.bufs[*t]),
                        (3, trec),
                        (5, &mon.counter),
                        (6, &self.bufs[*total]),
                    ],
                    [1, 1, 1],
                )?);
            } else {
                passes.push(self.support(
                    "record_row",
                    MONITORS_WGSL,
                    "record_row",
                    &[(0, &np), (4, &mon.counter), (5, &self.bufs[*total])],
                    [1, 1, 1],
                )?);
                mon.host_time = Some(HostTime {
                    t_pos: records.len(),
                    rate: None,
                    row_t: Vec::new(),
                });
            }
            self.monitors.push(mon);
            Prepared::Passes(passes, Some(self.monitors.len() - 1))
        })
    }

    /// `ratemonitor`: one thread per step.
    pub(super) fn rate_monitor(&mut self, cx: &mut Prep, op: &Op) -> Result<Prepared, EngineError> {
        let Op::RateMonitor {
            eventspace,
            source_n,
            start,
            stop,
            t,
            dt,
            t_record,
            rate_record,
            total,
        } = op
        else {
            unreachable!("rate_monitor of another operation")
        };
        Ok({
            let mut mon = self.records_for(
                cx.eng,
                &[*t_record, *rate_record],
                &[1, 1],
                &[1, 1],
                cx.steps,
            )?;
            let (range, rp) = self.event_range(cx, *eventspace, *source_n, *start, *stop)?;
            let r = if self.ctx.supports_f64() {
                let fp = storage(
                    self.ctx,
                    "rate params",
                    bytemuck::cast_slice(&[*dt, (*stop - *start) as f64]),
                )?;
                let mut r = self.support(
                    "record_rate",
                    MONITORS_F64_WGSL,
                    "record_rate",
                    &[
                        (7, &fp),
                        (1, &range),
                        (2, &self.bufs[*t]),
                        (3, &mon.records[0].1),
                        (4, &mon.records[1].1),
                        (5, &mon.counter),
                        (6, &self.bufs[*total]),
                    ],
                    [1, 1, 1],
                )?;
                r.params = Some(fp);
                r
            } else {
                let r = self.support(
                    "record_count",
                    MONITORS_WGSL,
                    "record_count",
                    &[
                        (2, &range),
                        (4, &mon.counter),
                        (5, &self.bufs[*total]),
                        (8, &mon.records[1].1),
                    ],
                    [1, 1, 1],
                )?;
                mon.host_time = Some(HostTime {
                    t_pos: 0,
                    rate: Some((1, *dt, (*stop - *start) as f64)),
                    row_t: Vec::new(),
                });
                r
            };
            self.monitors.push(mon);
            Prepared::Passes(
                rp.into_iter().chain([r]).collect(),
                Some(self.monitors.len() - 1),
            )
        })
    }

    pub(super) fn records_for(
        &self,
        eng: &Engine,
        ids: &[usize],
        worst: &[usize],
        len_word: &[usize],
        steps: usize,
    ) -> Result<MonitorRecords, EngineError> {
        let limit = self.ctx.limits.max_storage_buffer_binding_size as usize;
        let mut records = Vec::new();
        for (i, &r) in ids.iter().enumerate() {
            let size = gpu_elem_size(eng.records[r].ty);
            if worst[i].saturating_mul(size) > limit {
                return Err(EngineError::Gpu(GpuError::TooLarge {
                    label: format!("record {r} (one step)"),
                    size: (worst[i] * size) as u64,
                    limit: limit as u64,
                }));
            }
            let cap = worst[i]
                .saturating_mul(steps.clamp(1, self.batch))
                .max(1024)
                .min((RECORD_START / size).max(worst[i]))
                .min(limit / size);
            let buf = self.record_buffer(cap * size)?;
            records.push((r, buf, cap));
        }
        Ok(MonitorRecords {
            bits: None,
            counter: storage(self.ctx, "counter", &[0u8; 8])?,
            records,
            worst: worst.to_vec(),
            bound: vec![0; ids.len()],
            len_word: len_word.to_vec(),
            host_time: None,
        })
    }

    fn record_buffer(&self, bytes: usize) -> Result<wgpu::Buffer, EngineError> {
        Ok(self.ctx.create_buffer(&wgpu::BufferDescriptor {
            label: Some("monitor records"),
            size: bytes.div_ceil(4).max(1) as u64 * 4,
            usage: wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })?)
    }

    /// After a drain: make monitor `m`'s records hold `ticks` more steps' worst case
    /// (doubling at least, up to [`RECORD_MOST`] and the binding limit), binding the new
    /// buffers in the monitor's passes. The drained records are empty: nothing is copied.
    pub(super) fn grow_records(
        &mut self,
        eng: &Engine,
        m: usize,
        ticks: usize,
    ) -> Result<(), EngineError> {
        let limit = self.ctx.limits.max_storage_buffer_binding_size as usize;
        let ctx = self.ctx;
        for i in 0..self.monitors[m].records.len() {
            let mon = &self.monitors[m];
            let (r, cap) = (mon.records[i].0, mon.records[i].2);
            debug_assert_eq!(mon.bound[i], 0, "records grow only when drained");
            let need = mon.bound[i] + mon.worst[i].saturating_mul(ticks);
            if need <= cap {
                continue;
            }
            let size = gpu_elem_size(eng.records[r].ty);
            let most = (RECORD_MOST.min(limit) / size).max(cap);
            let new_cap = need.max(cap.saturating_mul(2)).min(most);
            if new_cap <= cap {
                continue;
            }
            let buf = self.record_buffer(new_cap * size)?;
            let old = std::mem::replace(&mut self.monitors[m].records[i].1, buf.clone());
            self.monitors[m].records[i].2 = new_cap;
            for p in &mut self.prepared {
                if let Prepared::Passes(passes, Some(pm)) = p
                    && *pm == m
                {
                    for pass in passes.iter_mut() {
                        pass.rebind(ctx, &old, &buf)?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Copy a monitor's records to the engine's host records and reset its counter.
    /// Returns how full the fullest record was (0 to 1; 0 for bit rows).
    pub(super) fn drain(&mut self, eng: &mut Engine, m: usize) -> Result<f64, EngineError> {
        if self.monitors[m].bits.is_some() {
            self.drain_bits(eng, m)?;
            return Ok(0.0);
        }
        let counter = self.ctx.read_buffer(&self.monitors[m].counter, 8)?;
        let words: [u32; 2] = [
            u32::from_le_bytes(counter[0..4].try_into().unwrap()),
            u32::from_le_bytes(counter[4..8].try_into().unwrap()),
        ];
        let mon = &mut self.monitors[m];
        let mut fill = 0f64;
        for (i, (r, buf, cap)) in mon.records.iter().enumerate() {
            let len = words[mon.len_word[i]] as usize;
            fill = fill.max(len as f64 / (*cap).max(1) as f64);
            if len == 0 {
                continue;
            }
            let ty = eng.records[*r].ty;
            if let Some(h) = &mon.host_time
                && h.t_pos == i
            {
                if h.row_t.len() != len {
                    return Err(EngineError::Invalid(format!(
                        "monitor recorded {len} rows, the host planned {}",
                        h.row_t.len()
                    )));
                }
                eng.records[*r].data.extend(float_bytes(&h.row_t, ty));
                continue;
            }
            let data = self.ctx.read_buffer(buf, len * gpu_elem_size(ty))?;
            if let Some((_, dt, n)) = mon
                .host_time
                .as_ref()
                .and_then(|h| h.rate)
                .filter(|r| r.0 == i)
            {
                // Each row's event count in the first word of its 8-byte slot.
                let rates: Vec<f64> = data
                    .chunks_exact(8)
                    .map(|w| (u32::from_le_bytes(w[..4].try_into().unwrap()) as f64 / dt) / n)
                    .collect();
                eng.records[*r].data.extend(float_bytes(&rates, ty));
                continue;
            }
            if ty == Type::Bool {
                // Stored as u32 on the GPU, one byte on the host (numpy's bool).
                let bytes = data
                    .chunks_exact(4)
                    .map(|w| (w.iter().any(|&b| b != 0)) as u8);
                eng.records[*r].data.extend(bytes);
            } else {
                eng.records[*r].data.extend_from_slice(&data);
            }
        }
        self.ctx.queue.write_buffer(&mon.counter, 0, &[0u8; 8]);
        mon.bound.iter_mut().for_each(|b| *b = 0);
        if let Some(h) = &mut mon.host_time {
            h.row_t.clear();
        }
        Ok(fill)
    }

    /// A bit-row SpikeMonitor's rows since the last drain as Brian2's records: per row in
    /// order, the ascending neurons with their `i` value and the row's `t`.
    fn drain_bits(&mut self, eng: &mut Engine, m: usize) -> Result<(), EngineError> {
        let b = self.monitors[m].bits.as_mut().expect("a bit-row monitor");
        let rows = b.row_t.len();
        if rows == 0 {
            return Ok(());
        }
        let bytes = rows * b.words * 4;
        let data = self.ctx.read_buffer(&b.bits, bytes)?;
        let words: &[u32] = bytemuck::cast_slice(&data[..bytes]);
        let i_values = self.arrays[b.i_values];
        let (mut is, mut ts) = (Vec::new(), Vec::new());
        for (row, &t) in b.row_t.iter().enumerate() {
            for (w, &word) in words[row * b.words..(row + 1) * b.words].iter().enumerate() {
                let mut word = word;
                while word != 0 {
                    let j = b.start + w * 32 + word.trailing_zeros() as usize;
                    word &= word - 1;
                    if j >= i_values.len {
                        return Err(EngineError::Invalid(format!(
                            "SpikeMonitor: event {j} outside the source's {} neurons",
                            i_values.len
                        )));
                    }
                    is.push(unsafe { *(i_values.ptr as *const i32).add(j) });
                    ts.push(t);
                }
            }
        }
        eng.records[b.i_record]
            .data
            .extend_from_slice(bytemuck::cast_slice(&is));
        let t_rec = &mut eng.records[b.t_record];
        t_rec.data.extend(float_bytes(&ts, t_rec.ty));
        let mut enc = self.ctx.device.create_command_encoder(&Default::default());
        enc.clear_buffer(&b.bits, 0, Some(bytes.div_ceil(4) as u64 * 4));
        self.ctx.submit("spike bits", enc.finish())?;
        b.row_t.clear();
        Ok(())
    }
}
