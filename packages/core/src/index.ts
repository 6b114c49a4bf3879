export * from './errors.js';
export * from './dtype.js';
export {
  Device,
  NO_ADAPTER_HELP,
  TENSOR_CORE_TOGGLES,
  isCpuAdapterInfo,
  type Backend,
  type DeviceOptions,
  type OptionalFeature,
  type AdapterSummary,
  type SubgroupMatrixConfig,
} from './device.js';
export { BufferPool, sizeClass, type PoolStats } from './buffer-pool.js';
export { Tensor, type Storage } from './tensor.js';
export { PipelineCache, type KernelSpec, type BindingKind } from './pipeline-cache.js';
export { UniformLayout, type ScalarType, type UniformValues } from './uniforms.js';
export { checkUniformStruct } from './uniform-struct.js';
export {
  Graph,
  type DispatchSpec,
  type Params,
  type Workgroups,
  type GraphStats,
  type ProfileEntry,
  type ReplayStats,
} from './graph.js';
export { debugLevel } from './debug.js';
export { ChunkedTensor, type RowChunk } from './chunked.js';
