// The project's typed errors. Every error a user can meet is one of these, with a stable string `code`
// and a message that names the file, tensor, argument or limit at fault (expected and got).

export class Glm4vError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    // Each class names itself literally: a minifying bundler renames classes, so new.target.name would not do.
    this.name = 'Glm4vError';
  }
}

/** A checkpoint file or tensor is missing, malformed, or not what the model expects. */
export class CheckpointError extends Glm4vError {
  override name = 'CheckpointError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('CHECKPOINT', message, options);
  }
}

/** A config file is missing a field or holds inconsistent values. */
export class ConfigError extends Glm4vError {
  override name = 'ConfigError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('CONFIG', message, options);
  }
}

/** A caller-supplied argument or input (image, prompt, option, shape) is invalid. */
export class InputError extends Glm4vError {
  override name = 'InputError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('INPUT', message, options);
  }
}

/** The prompt (plus requested new tokens) does not fit the context. */
export class ContextOverflowError extends Glm4vError {
  override name = 'ContextOverflowError';
  constructor(message: string) {
    super('CONTEXT_OVERFLOW', message);
  }
}

export interface ShaderMessage {
  type: 'error' | 'warning' | 'info';
  /** Line and column in the joined source the kernel was compiled from. */
  line: number;
  column: number;
  message: string;
  /** The .wgsl file and line that source line came from (absent for lines a wrapper generated). */
  source?: { file: string; line: number };
}

/** WGSL failed to compile or the pipeline failed to build; `messages` carry line and column. */
export class ShaderCompileError extends Glm4vError {
  override name = 'ShaderCompileError';
  readonly label: string;
  readonly messages: ShaderMessage[];
  constructor(label: string, messages: ShaderMessage[], detail?: string) {
    const lines = messages.map((m) =>
      m.source
        ? `  ${m.source.file}:${m.source.line}:${m.column} ${m.type}: ${m.message} (${label}:${m.line})`
        : `  ${label}:${m.line}:${m.column} ${m.type}: ${m.message}`,
    );
    super(
      'SHADER_COMPILE',
      [`shader '${label}' failed to compile`, ...lines, ...(detail ? [`  ${detail}`] : [])].join('\n'),
    );
    this.label = label;
    this.messages = messages;
  }
}

/** No usable adapter, a validation failure, or any other device-level failure. */
export class DeviceError extends Glm4vError {
  override name = 'DeviceError';
  constructor(message: string, options?: { cause?: unknown }) {
    super('DEVICE', message, options);
  }
}

/** The GPU device was lost (driver reset, destroyed, out of resources). Nothing on it can be used again. */
export class DeviceLostError extends Glm4vError {
  override name = 'DeviceLostError';
  readonly reason: string;
  constructor(reason: string, message: string) {
    super('DEVICE_LOST', `GPU device lost (${reason}): ${message}`);
    this.reason = reason;
  }
}

/** A request exceeds a device limit (binding size, buffer size, workgroup count), checked before dispatch. */
export class LimitError extends Glm4vError {
  override name = 'LimitError';
  constructor(message: string) {
    super('LIMIT', message);
  }
}

/** The device could not allocate memory. */
export class OutOfMemoryError extends Glm4vError {
  override name = 'OutOfMemoryError';
  constructor(message: string) {
    super('OUT_OF_MEMORY', message);
  }
}

/** The operation was cancelled through an AbortSignal. */
export class AbortError extends Glm4vError {
  override name = 'AbortError';
  constructor(message = 'operation aborted') {
    super('ABORTED', message);
  }
}
