// Errors as OpenAI's API returns them: an HTTP status and {"error": {"message", "type", "param", "code"}}. Handlers
// throw ApiError; the runtime's typed errors map to a status here (input the client can fix: 400; the device or
// the server: 500), so a client always gets one JSON object, never a stack trace or a dropped connection.

import {
  AbortError,
  ContextOverflowError,
  DeviceError,
  DeviceLostError,
  Glm4vError,
  InputError,
  LimitError,
  OutOfMemoryError,
} from '@glm4v/core';

export interface ErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly type: string,
    readonly code: string | null = null,
    readonly param: string | null = null,
    /** Extra response headers (Retry-After for 429). */
    readonly headers: Record<string, string> = {},
  ) {
    super(message);
  }

  get body(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** 400: a request the client can fix. */
export function invalid(message: string, param: string | null = null, code = 'invalid_value'): ApiError {
  return new ApiError(400, message, 'invalid_request_error', code, param);
}

/** The ApiError for anything thrown while serving a request. */
export function toApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  const message = e instanceof Error ? e.message.split('\n')[0] : String(e);
  if (e instanceof ContextOverflowError) return invalid(message, 'messages', 'context_length_exceeded');
  if (e instanceof AbortError) return new ApiError(503, message, 'server_error', 'request_cancelled');
  if (e instanceof OutOfMemoryError || e instanceof DeviceLostError || e instanceof DeviceError)
    return new ApiError(500, message, 'server_error', 'device_error');
  // a limit of this device or of the model (an image too large for its bindings) or a bad prompt or image
  if (e instanceof LimitError || e instanceof InputError) return invalid(message, 'messages');
  if (e instanceof Glm4vError) return new ApiError(500, message, 'server_error', e.code);
  const code = (e as NodeJS.ErrnoException)?.code;
  if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') return invalid(message, 'messages', 'invalid_file');
  return new ApiError(500, message, 'server_error', 'internal_error');
}
