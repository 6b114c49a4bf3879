// A queue between a producer that runs on its own schedule (the batcher's loop) and one consumer that reads at its
// own pace (for await). Items wait in order; the consumer's next() waits when there are none. end() finishes the
// stream after the queued items, fail() after them with an error. When the consumer stops early (break, return,
// an exception in its loop body), `onCancel` runs once, so the producer can free what the stream held.

export class EventQueue<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private waiter: { resolve: (r: IteratorResult<T>) => void; reject: (e: unknown) => void } | undefined;
  private closed: { failed: boolean; error?: unknown } | undefined;
  private cancelled = false;

  constructor(private readonly onCancel: () => void = () => undefined) {}

  push(item: T): void {
    if (this.closed || this.cancelled) return;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve({ value: item, done: false });
    } else this.items.push(item);
  }

  /** No more items: the consumer gets those queued, then the end. */
  end(): void {
    this.close({ failed: false });
  }

  /** The consumer gets the queued items, then `error`. */
  fail(error: unknown): void {
    this.close({ failed: true, error });
  }

  get isClosed(): boolean {
    return this.closed !== undefined || this.cancelled;
  }

  private close(how: { failed: boolean; error?: unknown }): void {
    if (this.closed) return;
    this.closed = how;
    if (this.waiter && this.items.length === 0) {
      const w = this.waiter;
      this.waiter = undefined;
      if (how.failed) w.reject(how.error);
      else w.resolve({ value: undefined, done: true });
    }
  }

  next(): Promise<IteratorResult<T>> {
    if (this.items.length) return Promise.resolve({ value: this.items.shift()!, done: false });
    if (this.closed)
      return this.closed.failed ? Promise.reject(this.closed.error) : Promise.resolve({ value: undefined, done: true });
    if (this.cancelled) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  /** The consumer stopped: drop what is queued and tell the producer. */
  return(): Promise<IteratorResult<T>> {
    if (!this.cancelled) {
      this.cancelled = true;
      this.items.length = 0;
      if (!this.closed) this.onCancel();
    }
    return Promise.resolve({ value: undefined, done: true });
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
