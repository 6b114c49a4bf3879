// The graph scheduler. Kernel wrappers record dispatches (pipeline, bindings, workgroup counts, uniforms) into
// a Graph; plan() compiles the pipelines, places every intermediate tensor in a pooled buffer by liveness (a
// buffer is reused as soon as the last reader of its tensor has run, so peak memory is the largest live set),
// and builds every bind group once. run(params) then writes only the uniforms that depend on params, encodes
// the whole graph into one command encoder and submits it: a recorded decode step is replayed per token
// without re-recording anything.

import type { Device } from './device.js';
import type { DType } from './dtype.js';
import { DeviceError, InputError, LimitError } from './errors.js';
import type { BindingKind, KernelSpec } from './pipeline-cache.js';
import { Tensor } from './tensor.js';
import { type UniformLayout, type UniformValues } from './uniforms.js';
import { checkUniformStruct } from './uniform-struct.js';
import { sizeClass } from './buffer-pool.js';
import { debugLevel, debugLog } from './debug.js';

/** Named numbers that change between replays (positions, lengths). */
export type Params = Readonly<Record<string, number>>;
export type Workgroups = readonly [number, number?, number?];

export interface DispatchSpec {
  kernel: KernelSpec;
  /** Bound at @binding(0) when present. Values may depend on the run's params. */
  uniforms?: { layout: UniformLayout; values: UniformValues | ((p: Params) => UniformValues) };
  /** Read-only storage, bound in order after the uniform block. */
  inputs?: readonly Tensor[];
  /** Read-write storage, bound in order after the inputs. */
  outputs?: readonly Tensor[];
  /** Workgroup counts; a function of the params for sizes that change between replays (0 skips the dispatch). */
  workgroups: Workgroups | ((p: Params) => Workgroups);
}

interface Dispatch {
  kind: 'dispatch';
  spec: DispatchSpec;
  tensors: Tensor[];
  kinds: BindingKind[];
  pipeline?: GPUComputePipeline;
  bindGroup?: GPUBindGroup;
  uniformOffset: number;
}

interface Copy {
  kind: 'copy';
  src: Tensor;
  dst: Tensor;
  srcByte: number;
  dstByte: number;
  bytes: number | ((p: Params) => number);
  tensors: Tensor[];
}

type Command = Dispatch | Copy;

export interface GraphStats {
  dispatches: number;
  intermediates: number;
  /** Bytes the intermediates would take each in its own buffer. */
  sumBytes: number;
  /** Bytes of the buffers the planner actually placed them in. */
  plannedBytes: number;
}

/** What the last run() or profile() did on the host: the work a replay costs whatever the device. */
export interface ReplayStats {
  /** Dispatches encoded (those with a zero workgroup count skipped). */
  dispatches: number;
  /** Bytes of uniforms written before the submit (the blocks that depend on the run's params). */
  uniformBytes: number;
}

export interface ProfileEntry {
  label: string;
  ms: number;
}

/** WebGPU caps a query set at 4096 queries: the begin and end timestamps of 2048 passes. */
const PASSES_PER_QUERY_SET = 2048;

export class Graph {
  readonly device: Device;
  readonly label: string;
  private readonly commands: Command[] = [];
  private readonly virtual = new Set<Tensor>();
  private readonly kept = new Set<Tensor>();
  private physical: GPUBuffer[] = [];
  private arena: GPUBuffer | undefined;
  private arenaHost: ArrayBuffer = new ArrayBuffer(0);
  private arenaView = new DataView(this.arenaHost);
  private dynamic: { at: number; d: Dispatch }[] = [];
  private dynamicRange: [number, number] = [0, 0];
  private planned: Promise<void> | undefined;
  private disposed = false;
  private placement: Omit<GraphStats, 'dispatches'> = { intermediates: 0, sumBytes: 0, plannedBytes: 0 };
  private replay: ReplayStats = { dispatches: 0, uniformBytes: 0 };

  constructor(device: Device, label = 'graph') {
    this.device = device;
    this.label = label;
  }

  /** An intermediate tensor whose buffer the planner chooses. */
  tensor(dtype: DType, shape: readonly number[], label = 'tmp'): Tensor {
    this.assertRecording();
    const t = new Tensor(this.device, dtype, shape, label);
    this.virtual.add(t);
    return t;
  }

  /** Keeps an intermediate alive until the graph is disposed, so it can be read after run(). Call it before plan(). */
  keep<T extends Tensor>(t: T): T {
    // After planning, the tensor's buffer may already be shared with a later intermediate.
    this.assertRecording();
    this.kept.add(t.root);
    return t;
  }

  get stats(): Readonly<GraphStats> {
    return { ...this.placement, dispatches: this.commands.filter((c) => c.kind === 'dispatch').length };
  }

  /** The last run()'s (or profile()'s) dispatches and uniform bytes written. */
  get lastRun(): Readonly<ReplayStats> {
    return { ...this.replay };
  }

  dispatch(spec: DispatchSpec): void {
    this.assertRecording();
    const inputs = spec.inputs ?? [];
    const outputs = spec.outputs ?? [];
    const label = spec.kernel.label;
    const limits = this.device.limits;
    for (const t of [...inputs, ...outputs]) {
      if (t.device !== this.device)
        throw new InputError(`kernel '${label}': tensor '${t.label}' belongs to another device`);
      if (t.byteSize > limits.maxStorageBufferBindingSize) {
        throw new LimitError(
          `kernel '${label}': tensor '${t.label}' ${t.dtype}[${t.shape.join(', ')}] is ${t.byteSize} bytes, above this device's ` +
            `storage binding limit of ${limits.maxStorageBufferBindingSize}; split it into chunks`,
        );
      }
    }
    for (const o of outputs) {
      if (inputs.some((i) => i.root === o.root))
        throw new InputError(`kernel '${label}': tensor '${o.label}' is both an input and an output`);
    }
    const align = limits.minStorageBufferOffsetAlignment;
    for (const t of [...inputs, ...outputs]) {
      if (t.root !== t && t.offset % align !== 0) {
        throw new InputError(
          `kernel '${label}': view '${t.label}' starts at byte ${t.offset}, not a multiple of the device's storage offset alignment ${align}`,
        );
      }
    }
    if (inputs.length + outputs.length > limits.maxStorageBuffersPerShaderStage) {
      throw new LimitError(
        `kernel '${label}': ${inputs.length + outputs.length} storage bindings, above the device limit of ${limits.maxStorageBuffersPerShaderStage}`,
      );
    }
    if (typeof spec.workgroups !== 'function')
      checkWorkgroups(spec.workgroups, label, limits.maxComputeWorkgroupsPerDimension);
    if (spec.uniforms) checkUniformStruct(spec.kernel.code, spec.uniforms.layout, label);
    const kinds: BindingKind[] = [
      ...(spec.uniforms ? ['uniform' as const] : []),
      ...inputs.map(() => 'read' as const),
      ...outputs.map(() => 'write' as const),
    ];
    this.commands.push({ kind: 'dispatch', spec, tensors: [...inputs, ...outputs], kinds, uniformOffset: -1 });
  }

  /** Copies `bytes` (a multiple of 4, possibly depending on params) from one tensor to another. */
  copy(
    src: Tensor,
    dst: Tensor,
    bytes: number | ((p: Params) => number) = src.byteSize,
    srcByte = 0,
    dstByte = 0,
  ): void {
    this.assertRecording();
    if (typeof bytes === 'number' && (srcByte + bytes > src.byteSize || dstByte + bytes > dst.byteSize)) {
      throw new InputError(
        `copy '${src.label}' → '${dst.label}': ${bytes} bytes at ${srcByte}/${dstByte} overflow the tensors`,
      );
    }
    this.commands.push({ kind: 'copy', src, dst, srcByte, dstByte, bytes, tensors: [src, dst] });
  }

  /** Compiles the pipelines, places the intermediates and builds the bind groups. Runs once. */
  plan(): Promise<void> {
    this.assertOpen();
    if (!this.planned) this.planned = this.doPlan();
    return this.planned;
  }

  private async doPlan(): Promise<void> {
    const dispatches = this.commands.filter((c): c is Dispatch => c.kind === 'dispatch');
    const pipelines = await Promise.all(dispatches.map((d) => this.device.pipelines.get(d.spec.kernel, d.kinds)));
    dispatches.forEach((d, i) => (d.pipeline = pipelines[i]));
    await this.place();
    this.buildUniformArena(dispatches);
    for (const d of dispatches) d.bindGroup = this.bindGroup(d);
    if (debugLevel() >= 1) {
      const s = this.stats;
      debugLog(
        `[glm4v] graph '${this.label}': ${s.dispatches} dispatches, ${s.intermediates} intermediates, ${s.sumBytes} B if separate, ${s.plannedBytes} B planned\n`,
      );
    }
  }

  /** Liveness placement: a tensor takes a free buffer at its first command and gives it back after its last. */
  private async place(): Promise<void> {
    const first = new Map<Tensor, number>();
    const last = new Map<Tensor, number>();
    this.commands.forEach((c, i) => {
      for (const view of c.tensors) {
        const t = view.root;
        if (!this.virtual.has(t)) continue;
        if (!first.has(t)) first.set(t, i);
        last.set(t, this.kept.has(t) ? Infinity : i);
      }
    });
    const startAt: Tensor[][] = this.commands.map(() => []);
    const endAt: Tensor[][] = this.commands.map(() => []);
    for (const [t, i] of first) startAt[i].push(t);
    for (const [t, i] of last) if (i !== Infinity) endAt[i].push(t);

    const free: { buffer: GPUBuffer; size: number }[] = [];
    const placedIn = new Map<Tensor, { buffer: GPUBuffer; size: number }>();
    let sumBytes = 0;
    let plannedBytes = 0;
    for (let i = 0; i < this.commands.length; i++) {
      for (const t of startAt[i]) {
        const need = sizeClass(Math.max(4, t.byteSize));
        sumBytes += need;
        let best = -1;
        for (let j = 0; j < free.length; j++)
          if (free[j].size >= need && (best < 0 || free[j].size < free[best].size)) best = j;
        const slot =
          best >= 0
            ? free.splice(best, 1)[0]
            : { buffer: await this.device.pool.acquire(need, `${this.label}:${t.label}`), size: need };
        if (best < 0) {
          this.physical.push(slot.buffer);
          plannedBytes += need;
        }
        placedIn.set(t, slot);
        t.bind({ buffer: slot.buffer, offset: 0 });
      }
      for (const t of endAt[i]) free.push(placedIn.get(t)!);
    }
    this.placement = { intermediates: first.size, sumBytes, plannedBytes };
  }

  /**
   * One uniform buffer for the whole graph. The blocks that depend on the params come first, so a run writes one
   * contiguous range of exactly those; the others are written once here.
   */
  private buildUniformArena(dispatches: Dispatch[]): void {
    const align = this.device.limits.minUniformBufferOffsetAlignment;
    let size = 0;
    const isDynamic = (d: Dispatch) => typeof d.spec.uniforms?.values === 'function';
    for (const d of [...dispatches.filter(isDynamic), ...dispatches.filter((d) => !isDynamic(d))]) {
      if (!d.spec.uniforms) continue;
      d.uniformOffset = size;
      size += Math.ceil(d.spec.uniforms.layout.byteSize / align) * align;
    }
    if (size === 0) return;
    this.arenaHost = new ArrayBuffer(size);
    this.arenaView = new DataView(this.arenaHost);
    this.arena = this.device.gpu.createBuffer({
      size,
      usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
      label: `${this.label}:uniforms`,
    });
    let lo = size;
    let hi = 0;
    for (const d of dispatches) {
      const u = d.spec.uniforms;
      if (!u) continue;
      if (typeof u.values === 'function') {
        this.dynamic.push({ at: d.uniformOffset, d });
        lo = Math.min(lo, d.uniformOffset);
        hi = Math.max(hi, d.uniformOffset + u.layout.byteSize);
      } else u.layout.write(this.arenaView, d.uniformOffset, u.values, d.spec.kernel.label);
    }
    this.dynamicRange = [lo, Math.max(lo, hi)];
    this.device.gpu.queue.writeBuffer(this.arena, 0, this.arenaHost);
  }

  private bindGroup(d: Dispatch): GPUBindGroup {
    const entries: GPUBindGroupEntry[] = [];
    let binding = 0;
    if (d.spec.uniforms)
      entries.push({
        binding: binding++,
        resource: { buffer: this.arena!, offset: d.uniformOffset, size: d.spec.uniforms.layout.byteSize },
      });
    for (const t of d.tensors)
      entries.push({
        binding: binding++,
        resource: { buffer: t.buffer, offset: t.offset, size: Math.max(4, t.byteSize) },
      });
    return this.device.gpu.createBindGroup({
      layout: this.device.pipelines.bindGroupLayout(d.kinds),
      entries,
      label: d.spec.kernel.label,
    });
  }

  /** Plans if needed, writes the params-dependent uniforms, and submits the whole graph once. */
  async run(params: Params = {}): Promise<void> {
    await this.plan();
    this.device.check();
    const uniformBytes = this.writeDynamicUniforms(params);
    const enc = this.device.gpu.createCommandEncoder({ label: this.label });
    this.replay = { dispatches: this.encode(enc, params).length, uniformBytes };
    this.device.gpu.queue.submit([enc.finish()]);
  }

  /**
   * Runs the graph with one timestamped pass per dispatch and returns each dispatch's GPU time. Any number of
   * dispatches: their timestamps go to as many query sets as the 4096-query cap needs, resolved into one buffer.
   */
  async profile(params: Params = {}): Promise<ProfileEntry[]> {
    await this.plan();
    this.device.check();
    if (!this.device.has('timestamp-query'))
      throw new DeviceError('profiling needs the timestamp-query feature, which this adapter lacks');
    const uniformBytes = this.writeDynamicUniforms(params);
    const gpu = this.device.gpu;
    const passes = Math.max(1, this.commands.filter((c) => c.kind === 'dispatch').length);
    const querySets: GPUQuerySet[] = [];
    let resolve: GPUBuffer | undefined;
    let readback: GPUBuffer | undefined;
    try {
      for (let k = 0; k < passes; k += PASSES_PER_QUERY_SET) {
        querySets.push(
          gpu.createQuerySet({
            type: 'timestamp',
            count: 2 * Math.min(PASSES_PER_QUERY_SET, passes - k),
            label: `${this.label}:profile`,
          }),
        );
      }
      const bytes = 2 * passes * 8;
      resolve = gpu.createBuffer({ size: bytes, usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC });
      readback = gpu.createBuffer({ size: bytes, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
      const enc = gpu.createCommandEncoder({ label: `${this.label}:profile` });
      const ran = this.encode(enc, params, (k) => ({
        querySet: querySets[Math.floor(k / PASSES_PER_QUERY_SET)],
        beginningOfPassWriteIndex: 2 * (k % PASSES_PER_QUERY_SET),
        endOfPassWriteIndex: 2 * (k % PASSES_PER_QUERY_SET) + 1,
      }));
      // Set i resolves at byte 2·2048·8·i = 32768·i, a multiple of the 256-byte resolve alignment.
      querySets.forEach((q, i) => enc.resolveQuerySet(q, 0, q.count, resolve!, i * 2 * PASSES_PER_QUERY_SET * 8));
      enc.copyBufferToBuffer(resolve, 0, readback, 0, bytes);
      this.replay = { dispatches: ran.length, uniformBytes };
      gpu.queue.submit([enc.finish()]);
      await this.device.guard(readback.mapAsync(GPUMapMode.READ));
      const ts = new BigUint64Array(readback.getMappedRange());
      return ran.map((d, k) => ({ label: d.spec.kernel.label, ms: Number(ts[2 * k + 1] - ts[2 * k]) / 1e6 }));
    } finally {
      for (const q of querySets) q.destroy();
      resolve?.destroy();
      readback?.destroy();
    }
  }

  /**
   * Encodes every command. Consecutive dispatches share one compute pass; with `timestamps`, the k-th dispatch
   * that runs gets its own pass with the timestamp writes timestamps(k). Returns the dispatches that ran.
   */
  private encode(
    enc: GPUCommandEncoder,
    params: Params,
    timestamps?: (k: number) => GPUComputePassTimestampWrites,
  ): Dispatch[] {
    const ran: Dispatch[] = [];
    let pass: GPUComputePassEncoder | undefined;
    for (const c of this.commands) {
      if (c.kind === 'copy') {
        pass?.end();
        pass = undefined;
        const bytes = typeof c.bytes === 'function' ? c.bytes(params) : c.bytes;
        if (bytes > 0)
          enc.copyBufferToBuffer(c.src.buffer, c.src.offset + c.srcByte, c.dst.buffer, c.dst.offset + c.dstByte, bytes);
        continue;
      }
      const wg = this.workgroups(c, params);
      if (wg[0] === 0 || wg[1] === 0 || wg[2] === 0) continue;
      if (timestamps) pass = enc.beginComputePass({ timestampWrites: timestamps(ran.length) });
      else pass ??= enc.beginComputePass();
      pass.setPipeline(c.pipeline!);
      pass.setBindGroup(0, c.bindGroup!);
      pass.dispatchWorkgroups(wg[0], wg[1], wg[2]);
      if (timestamps) {
        pass.end();
        pass = undefined;
      }
      ran.push(c);
    }
    pass?.end();
    return ran;
  }

  private workgroups(d: Dispatch, params: Params): readonly [number, number, number] {
    const w = typeof d.spec.workgroups === 'function' ? d.spec.workgroups(params) : d.spec.workgroups;
    if (typeof d.spec.workgroups === 'function')
      checkWorkgroups(w, d.spec.kernel.label, this.device.limits.maxComputeWorkgroupsPerDimension);
    return [w[0], w[1] ?? 1, w[2] ?? 1];
  }

  /** Writes the params-dependent uniform blocks; returns the bytes written. */
  private writeDynamicUniforms(params: Params): number {
    if (this.dynamic.length === 0) return 0;
    for (const { at, d } of this.dynamic) {
      const u = d.spec.uniforms!;
      u.layout.write(this.arenaView, at, (u.values as (p: Params) => UniformValues)(params), d.spec.kernel.label);
    }
    const [lo, hi] = this.dynamicRange;
    this.device.gpu.queue.writeBuffer(this.arena!, lo, this.arenaHost, lo, hi - lo);
    return hi - lo;
  }

  /** Returns the intermediates' buffers to the pool; the graph's tensors can no longer be read. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of this.virtual) t.bind(undefined);
    for (const b of this.physical) this.device.pool.release(b);
    this.physical = [];
    this.arena?.destroy();
  }

  private assertOpen(): void {
    if (this.disposed) throw new DeviceError(`graph '${this.label}' has been disposed`);
  }

  private assertRecording(): void {
    this.assertOpen();
    // Recording after planning would leave the new commands without buffers or bind groups.
    if (this.planned) throw new DeviceError(`graph '${this.label}' is already planned; record a new graph instead`);
  }
}

function checkWorkgroups(w: Workgroups, label: string, max: number): void {
  for (const n of w) {
    if (n === undefined) continue;
    if (!Number.isInteger(n) || n < 0)
      throw new InputError(`kernel '${label}': workgroup count ${n} is not a non-negative integer`);
    if (n > max)
      throw new LimitError(`kernel '${label}': ${n} workgroups in one dimension, above the device limit of ${max}`);
  }
}
