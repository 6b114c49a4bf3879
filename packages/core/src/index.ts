export * from './errors.js';
export * from './dtype.js';
export { Device, NO_ADAPTER_HELP, type Backend, type DeviceOptions, type OptionalFeature, type AdapterSummary } from './device.js';
export { BufferPool, sizeClass, type PoolStats } from './buffer-pool.js';
export { Tensor, type Storage } from './tensor.js';
export { PipelineCache, type KernelSpec, type BindingKind } from './pipeline-cache.js';
export { UniformLayout, type ScalarType, type UniformValues } from './uniforms.js';
export { Graph, type DispatchSpec, type Params, type Workgroups, type GraphStats, type ProfileEntry } from './graph.js';
export { debugLevel } from './debug.js';
